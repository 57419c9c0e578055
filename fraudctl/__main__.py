from fraudctl.cli import main

main()
