"""TrainConfig checks and the YAML + key=value loader."""
import pytest

from rmkit.train.config import TrainConfig, load_config, parse_overrides


def test_overrides_parse_as_yaml():
    assert parse_overrides(["learning_rate=1e-4", "data=[a.jsonl, b.jsonl]", "lora_r=8", "max_steps="]) == \
        {"learning_rate": "1e-4", "data": ["a.jsonl", "b.jsonl"], "lora_r": 8, "max_steps": None}


def test_load_yaml_with_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: m\nlearning_rate: 1e-5\ndata: x.jsonl\n")
    cfg = load_config(f, ["learning_rate=2e-4", "batch_size=2", "oversample={ultrafeedback: 3}"])
    assert cfg.learning_rate == pytest.approx(2e-4) and cfg.batch_size == 2 and cfg.data == ["x.jsonl"]
    assert cfg.oversample == {"ultrafeedback": 3}


@pytest.mark.parametrize("bad", [{"truncation": "cut"}, {"batch_size": 0}, {"lr_scheduler": "step"},
                                 {"mixed_precision": "fp8"}, {"warmup_ratio": 1.5}, {"max_steps": 0},
                                 {"oversample": {"uf": -1}}, {"oversample": {"uf": 1.5}},
                                 {"oversample": ["uf"]}])
def test_post_init_rejects(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_unknown_key_names_known(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys \\['lr'\\]"):
        load_config(None, ["lr=1"])
    with pytest.raises(ValueError, match="not key=value"):
        parse_overrides(["oops"])


def test_no_off_yes_on_stay_words_in_string_fields_and_bools_in_bool_fields(tmp_path):
    """YAML 1.1 reads no/off/yes/on as booleans: `mixed_precision=no` must still mean "no" (issue 21)."""
    cfg = load_config(None, ["mixed_precision=no", "packing=off", "trunk_cache=off", "gradient_checkpointing=yes",
                             "save_best=on", "final_eval=off", "trust_remote_code=false"])
    assert (cfg.mixed_precision, cfg.packing, cfg.trunk_cache) == ("no", "off", "off")
    assert cfg.gradient_checkpointing is True and cfg.save_best is True
    assert cfg.final_eval is False and cfg.trust_remote_code is False
    f = tmp_path / "c.yaml"
    f.write_text("mixed_precision: no\npacking: on\ngroup_by_length: no\nlora_target_modules: [on, off]\n")
    cfg = load_config(f)
    assert (cfg.mixed_precision, cfg.packing, cfg.group_by_length) == ("no", "on", False)
    assert cfg.lora_target_modules == ["on", "off"]


def test_a_bool_field_refuses_a_word_that_is_not_a_boolean():
    with pytest.raises(ValueError, match="gradient_checkpointing must be true or false.*'maybe'"):
        load_config(None, ["gradient_checkpointing=maybe"])
    with pytest.raises(ValueError, match="max_steps: expected a number, got 'off'"):
        load_config(None, ["max_steps=off"])
