"""The PostgreSQL client of fraudctl: health probe and the first-start bootstrap (role and databases)."""

from __future__ import annotations

from fraudctl.config import PostgresConfig
from fraudctl.errors import UnavailableError

SUPERUSER = "postgres"


def _connect(pg: PostgresConfig, user: str, password: str, dbname: str = "postgres", timeout: int = 3):
    import psycopg2

    return psycopg2.connect(host=pg.host, port=pg.port, user=user, password=password, dbname=dbname,
                            connect_timeout=timeout)


def probe(pg: PostgresConfig, user: str, password: str, dbname: str = "postgres") -> str:
    try:
        with _connect(pg, user, password, dbname) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
    except Exception as exc:
        raise UnavailableError(f"PostgreSQL at {pg.host}:{pg.port} did not answer SELECT 1: {exc}".strip()) from None
    finally:
        try:
            conn.close()
        except Exception:
            pass
    return f"SELECT 1 ok (server {version})"


def bootstrap(pg: PostgresConfig, superuser_password: str, app_password: str) -> None:
    """Create the application role and make it the owner of the Airflow, MLflow and rules databases.

    Ownership matters: since PostgreSQL 15 no role but the owner may CREATE in schema public.
    Idempotent, so every `up` may run it.
    """
    from psycopg2 import sql

    conn = _connect(pg, SUPERUSER, superuser_password)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(pg.user)), (app_password,))
            for db in (pg.airflow_db, pg.mlflow_db, pg.rules_db):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if not cur.fetchone():
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(pg.user)))
    finally:
        conn.close()


def url(pg: PostgresConfig, password: str, dbname: str, driver: str = "postgresql") -> str:
    from urllib.parse import quote

    return f"{driver}://{quote(pg.user, safe='')}:{quote(password, safe='')}@{pg.host}:{pg.port}/{dbname}"
