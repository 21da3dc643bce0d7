"""The files that cannot be run here (Docker) or that a fresh machine runs first stay true."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _setup_pins() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += cfg["options.extras_require"]["test"].splitlines()
    return _pins(lines)


def test_every_dependency_is_pinned():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    for line in cfg["options"]["install_requires"].strip().splitlines():
        assert "==" in line, f"setup.cfg: {line.strip()} is not pinned"
    assert _setup_pins()["torch"] == "2.13.0"


def test_docker_requirements_match_setup_cfg():
    pins = _setup_pins()
    for name in ("requirements-spark.txt", "requirements-trainer.txt"):
        for pkg, version in _pins((ROOT / "docker" / name).read_text().splitlines()).items():
            assert pins.get(pkg) == version, f"docker/{name}: {pkg}=={version} vs setup.cfg"
    spark = _pins((ROOT / "docker" / "requirements-spark.txt").read_text().splitlines())
    assert "torch" not in spark  # the Spark side never imports torch
    trainer = _pins((ROOT / "docker" / "requirements-trainer.txt").read_text().splitlines())
    assert "pyspark" not in trainer


def test_dockerfiles_copy_what_exists():
    for dockerfile in (ROOT / "docker").glob("Dockerfile.*"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for src in line.split()[1:-1]:
                    assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src} does not exist"
        torch_pin = re.search(r"torch==([\d.]+)", dockerfile.read_text())
        if torch_pin:
            assert torch_pin.group(1) == _setup_pins()["torch"]


def test_compose_services_build_existing_dockerfiles():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert {"spark-master", "spark-worker-1", "trainer"} <= set(compose["services"])
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None and "<<" in service:
            build = service["<<"].get("build")
        if build:
            assert (ROOT / "docker" / build["context"] / build["dockerfile"]).exists(), name


def test_readme_quick_start_has_two_commands_and_ci_runs_the_second():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.strip().removeprefix("$ ")
        for line in section.splitlines()
        if re.match(r"^\s*(\$ )?[a-z]", line) and not line.strip().startswith("#")
    ]
    assert len(commands) == 2, commands
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_delta_jars_match_the_pinned_pyspark_and_are_baked_into_the_image():
    from pipeline.session import read_defaults

    conf = read_defaults(ROOT / "spark-defaults.conf")
    pins = _setup_pins()
    (coordinate,) = conf["spark.jars.packages"].split(",")
    group, artifact, version = coordinate.split(":")
    assert (group, artifact) == ("io.delta", "delta-spark_2.13")
    # delta-spark's Python package and its jar are one release; Delta 4.0.x is built for
    # Spark 4.0.x (its pom's spark-sql dependency), the pyspark pinned here.
    assert version == pins["delta-spark"]
    assert version.split(".")[:2] == ["4", "0"] and pins["pyspark"].startswith("4.0.")
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"].endswith("DeltaCatalog")
    assert conf["spark.databricks.delta.properties.defaults.enableDeletionVectors"] == "false"
    spark_image = (ROOT / "docker" / "Dockerfile.spark").read_text()
    assert "spark.jars.packages" in spark_image and '"$SPARK_HOME/jars/"' in spark_image
    trainer = _pins((ROOT / "docker" / "requirements-trainer.txt").read_text().splitlines())
    assert trainer["deltalake"] == pins["deltalake"]  # the trainer reads the lake with it


def test_spark_defaults_parse_and_set_micros():
    from pipeline.session import read_defaults

    conf = read_defaults(ROOT / "spark-defaults.conf")
    assert conf["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert conf["spark.sql.session.timeZone"] == "UTC"
