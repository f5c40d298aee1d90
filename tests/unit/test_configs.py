"""Every YAML under configs/ parses; every recipe under configs/train/ is a valid TrainConfig whose
first line holds the command that runs it."""
from pathlib import Path

import pytest
import yaml

from rmkit.train.config import load_config

ROOT = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(ROOT.rglob("*.yaml")) + sorted(ROOT.rglob("*.yml"))
TRAIN = sorted((ROOT / "train").glob("*.yaml"))


def test_there_are_configs():
    assert len(TRAIN) >= 3 and (ROOT / "accelerate").is_dir()


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.name)
def test_train_recipe(path):
    cfg = load_config(path)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and path.name in first and ("rmkit train" in first or "accelerate launch" in first)
    assert cfg.data, f"{path.name} names no training data"


ACCELERATE = sorted((ROOT / "accelerate").glob("*.yaml"))


def launcher_env(path: Path) -> tuple:
    """What `accelerate launch --config_file path` hands the processes it starts: accelerate's own parser,
    config-file defaults and environment builders (no process is started)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "rmkit.train.cli"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:  # as launch_command does before calling the DeepSpeed launcher
        fields = list(defaults.deepspeed_config) + ["mixed_precision"]
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_"))}


def recipe_of(path: Path):
    """The training recipe the accelerate config's first line launches."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# accelerate launch") and f"--config_file configs/accelerate/{path.name}" in first
    return load_config(ROOT.parent / first.split("--config ")[-1].split()[0])


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_loads(path, monkeypatch):
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin

    args, env = launcher_env(path)
    recipe = recipe_of(path)
    assert args.num_processes == 8 and args.mixed_precision == recipe.mixed_precision == "bf16"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if path.name.startswith("deepspeed"):
        assert args.use_deepspeed and env["ACCELERATE_USE_DEEPSPEED"] == "true"
        plugin = DeepSpeedPlugin()  # reads the launcher's environment, as each process does
        ds = plugin.deepspeed_config
        assert plugin.zero_stage == 3 and ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
        # the recipe's accumulation and clipping are the ones DeepSpeed will run with
        assert ds["gradient_accumulation_steps"] == recipe.grad_accum
        assert ds["gradient_clipping"] == recipe.max_grad_norm
        assert plugin.zero3_init_flag
    elif path.name.startswith("fsdp"):
        assert args.use_fsdp and env["ACCELERATE_USE_FSDP"] == "true"
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
        assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # what rmkit's export gathers
        assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    else:
        assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
