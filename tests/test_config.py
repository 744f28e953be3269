from __future__ import annotations

from pathlib import Path

import pytest

from soc.config import Address, ConfigError, load_config


def test_defaults_need_no_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.data_dir == Path("data")
    assert config.http.listen == Address("127.0.0.1", 8000)
    assert config.syslog.listen == Address("127.0.0.1", 5514)
    assert config.syslog.udp and config.syslog.tcp
    assert config.sqlite_path == Path("data/soc.db")


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "soc.yaml"
    file.write_text("data_dir: /srv/soc\nhttp: {listen: '0.0.0.0:80'}\nsyslog:\n  udp: false\n")
    env = {"SOC_HTTP": "127.0.0.1:9000", "SOC_SYSLOG__TIMEZONE": "UTC"}
    config = load_config(file=file, environ=env, overrides={"data_dir": "/tmp/x"})
    assert config.data_dir == Path("/tmp/x")
    assert config.http.listen == Address("127.0.0.1", 9000)
    assert config.syslog.udp is False
    assert config.syslog.timezone == "UTC"


def test_flags_give_addresses_as_plain_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(
        environ={},
        overrides={"http": {"listen": "[::1]:8443"}, "syslog": {"listen": "0.0.0.0:514"}},
    )
    assert config.http.listen == Address("::1", 8443)
    assert str(config.http.listen) == "[::1]:8443"
    assert config.syslog.listen.port == 514


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("syslog: {lisen: '1.2.3.4:5'}", "syslog.lisen"),
        ("http: {listen: 'nope'}", "http.listen"),
        ("http: {listen: '1.2.3.4:99999'}", "http.listen"),
        ("syslog: {udp: maybe}", "syslog.udp"),
        ("syslog: {timezone: Mars/Olympus}", "syslog.timezone"),
        ("log: {level: loud}", "log.level"),
        ("bus: 'carrier-pigeon://x'", "bus"),
        ("pipeline: {batch_size: -1}", "pipeline.batch_size"),
        ("rules: {paths: 3}", "rules.paths"),
        ("- just\n- a list", "top level"),
        ("a: [unclosed", "not valid YAML"),
    ],
)
def test_a_wrong_key_or_value_is_named(tmp_path: Path, text: str, named: str) -> None:
    file = tmp_path / "soc.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(file=file, environ={})


def test_environment_errors_say_they_come_from_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"environment: unknown key 'colour'"):
        load_config(environ={"SOC_COLOUR": "blue"})


def test_soc_config_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "elsewhere.yaml"
    file.write_text("data_dir: /var/lib/soc\n")
    assert load_config(environ={"SOC_CONFIG": str(file)}).data_dir == Path("/var/lib/soc")
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(environ={"SOC_CONFIG": str(tmp_path / "missing.yaml")})


def test_engine_stages_default_to_all_and_may_be_spread_over_processes_on_kafka() -> None:
    assert load_config(environ={}).pipeline.stages == (
        "normalize", "detect", "index", "correlate", "incidents",
    )  # fmt: skip
    env = {"SOC_BUS": "kafka://127.0.0.1:9092", "SOC_PIPELINE__STAGES": "normalize,index"}
    assert load_config(environ=env).pipeline.stages == ("normalize", "index")
    flags = {"pipeline": {"stages": "detect,correlate,incidents"}}
    config = load_config(environ={"SOC_BUS": "kafka://127.0.0.1:9092"}, overrides=flags)
    assert config.pipeline.stages == ("detect", "correlate", "incidents")


def test_an_engine_may_be_made_nicer_but_never_less_nice() -> None:
    assert load_config(environ={}).pipeline.nice == 0
    assert load_config(environ={"SOC_PIPELINE__NICE": "10"}).pipeline.nice == 10
    assert load_config(environ={}, overrides={"pipeline": {"nice": 19}}).pipeline.nice == 19
    with pytest.raises(ConfigError, match=r"pipeline\.nice: must be between 0 and 19"):
        load_config(environ={"SOC_PIPELINE__NICE": "20"})
    with pytest.raises(ConfigError, match=r"pipeline\.nice: must not be negative"):
        load_config(environ={"SOC_PIPELINE__NICE": "-5"})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SOC_BUS": "kafka://k:9092", "SOC_PIPELINE__STAGES": "normalize,enrich"}, "'enrich'"),
        ({"SOC_BUS": "kafka://k:9092", "SOC_PIPELINE__STAGES": ","}, "at least one"),
        ({"SOC_BUS": "kafka://k:9092", "SOC_PIPELINE__STAGES": "detect,detect"}, "named twice"),
        # Over the in-process bus a stage left out would stall every stage upstream of it.
        ({"SOC_PIPELINE__STAGES": "normalize,detect"}, "in-process bus needs every stage"),
    ],
)
def test_a_wrong_list_of_engine_stages_is_refused_with_its_reason(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=rf"pipeline\.stages: .*{named}"):
        load_config(environ=environ)
