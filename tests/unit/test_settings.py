import pytest

from engine.errors import UsageError
from engine.settings import Settings, load_settings, save_settings


def test_defaults(tmp_path):
    s = load_settings(home=tmp_path, env={})
    assert s.clip_model == "ViT-B-32"
    assert s.clip_pretrained == "laion2b_s34b_b79k"
    assert s.whisper_model == "base"
    assert s.device == "cpu"
    assert s.allow_download is False
    assert s.db_path == tmp_path.resolve() / "library.sqlite3"


def test_environment_overrides(tmp_path):
    env = {
        "SHOEBOX_CLIP_MODEL": "xlm-roberta-base-ViT-B-32",
        "SHOEBOX_ALLOW_DOWNLOAD": "1",
        "SHOEBOX_DEVICE": "cuda",
        "SHOEBOX_BATCH_SIZE": "4",
        "SHOEBOX_HOME": str(tmp_path / "x"),
    }
    s = load_settings(env=env)
    assert s.clip_model == "xlm-roberta-base-ViT-B-32"
    assert s.allow_download is True
    assert s.device == "cuda"
    assert s.batch_size == 4
    assert s.home == (tmp_path / "x").resolve()


def test_explicit_home_beats_environment(tmp_path):
    s = load_settings(home=tmp_path / "a", env={"SHOEBOX_HOME": str(tmp_path / "b")})
    assert s.home == (tmp_path / "a").resolve()


def test_saved_settings_are_read_and_environment_wins(tmp_path):
    s = load_settings(home=tmp_path, env={})
    save_settings(s, whisper_model="small", device="mps")
    assert load_settings(home=tmp_path, env={}).whisper_model == "small"
    assert load_settings(home=tmp_path, env={"SHOEBOX_WHISPER_MODEL": "tiny"}).whisper_model == "tiny"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"SHOEBOX_DEVICE": "tpu"}, "SHOEBOX_DEVICE"),
        ({"SHOEBOX_BATCH_SIZE": "many"}, "whole number"),
        ({"SHOEBOX_ALLOW_DOWNLOAD": "perhaps"}, "expected 1 or 0"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path, env, words):
    with pytest.raises(UsageError, match=words):
        load_settings(home=tmp_path, env=env)


def test_every_setting_is_documented():
    for name, env, _value, doc in Settings().describe():
        assert env.startswith("SHOEBOX_"), name
        assert doc.endswith("."), name


def test_the_settings_file_is_readable_by_its_owner_only(tmp_path):
    # A server library's address may hold its password.
    settings = load_settings(home=tmp_path, env={})
    save_settings(settings, store="postgresql://me:secret@nas.local/shoebox")
    assert (tmp_path / "settings.json").stat().st_mode & 0o777 == 0o600
    assert load_settings(home=tmp_path, env={}).store == "postgresql://me:secret@nas.local/shoebox"
