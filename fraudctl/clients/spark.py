"""Spark for fraudctl's jobs: the session settings (connector jars from the project's pom, loopback
addresses, the project's Python on every executor) and where the scorer's checkpoint and state live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fraudctl.config import Config
from fraudctl.clients import jvm

SCORER_APP = "fraudctl-scorer"


def connector_jars(config: Config) -> list[Path]:
    """The Kafka connector resolved by Maven from stack/native/jvm/spark. The pom's "s3" profile (S3A,
    hadoop-aws and a ~600 MB AWS bundle) is not needed: the scorer writes the lake with pyarrow, not S3A."""
    return sorted(jvm.resolve(jvm.SPARK_POM).glob("*.jar"))


def session_conf(config: Config, *, master: str | None = None, app_name: str = SCORER_APP) -> dict[str, str]:
    spark = config.spark
    python = sys.executable
    return {
        "spark.master": master or spark.master,
        "spark.app.name": app_name,
        "spark.jars": ",".join(str(j) for j in connector_jars(config)),
        "spark.driver.memory": spark.driver_memory,
        "spark.executor.memory": spark.executor_memory,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        # The hostname may resolve to a non-loopback address; executors must call the driver on loopback
        # (natively), or on the scorer's service name under compose (spark.driver_host).
        "spark.driver.host": spark.driver_host,
        "spark.driver.bindAddress": spark.driver_host,
        "spark.ui.port": str(spark.ui_port),
        "spark.port.maxRetries": "0",  # a taken UI port is an error, not a silent move to the next one
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.streaming.metricsEnabled": "true",
        # Local files (the scorer's checkpoint) without Hadoop's .crc side files: each micro-batch writes two
        # checkpoint files (offsets, then commits), each written aside and renamed into place either way, and
        # neither is fsync'd either way; the checksums cost ~20 ms a file here (walCommit + commitOffsets
        # 82 -> 43 ms a batch). A checkpoint written with checksums reads the same.
        "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.file.impl": "org.apache.hadoop.fs.local.RawLocalFs",
        # Without Hadoop's native library (pyspark ships none), Hadoop forks a process for a local file's
        # permission (`chmod`) and, through FileContext, for resolving links (`readlink`). Spark's default
        # checkpoint writer (FileContext) forked five a file (strace: one chmod, four readlink), two files a
        # batch: walCommit and commitOffsets 18-26 ms each here, more on a loaded machine. The
        # FileSystem-based writer forks only the chmod: 6-8 ms each. Its rename is atomic on a local file
        # system, and the checkpoint is always the driver's local folder (`scorer_dir`).
        "spark.sql.streaming.checkpointFileManagerClass":
            "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager",
    }


def spark_environment(config: Config | None = None) -> dict[str, str]:
    """Environment of a process that starts Spark: loopback only (or spark.driver_host, which the scorer's
    container sets to its service name), the venv's Python for workers."""
    host = config.spark.driver_host if config is not None else "127.0.0.1"
    return {"SPARK_LOCAL_IP": host, "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable}


def build_session(config: Config, *, master: str | None = None, app_name: str = SCORER_APP):
    os.environ.update(spark_environment(config))
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in session_conf(config, master=master, app_name=app_name).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def scorer_dir(config: Config) -> Path:
    """The scorer's local state: Spark checkpoint, feature state, status file, launch options."""
    return config.state_dir / "scorer"
