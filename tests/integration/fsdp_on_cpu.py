"""`rmkit.train.cli` under accelerate's FSDP code path on CPU processes (test helper).

accelerate 1.15 turns `distributed_type: FSDP` into MULTI_CPU (DDP) when the processes have no accelerator,
so on this machine `accelerate launch --config_file configs/accelerate/fsdp.yaml` would silently run DDP. This
launcher script keeps everything accelerate does (its launcher, its environment, its FullyShardedDataParallelPlugin,
`fully_shard` in `prepare`, its state-dict gathering and checkpointing) and only restores the FSDP type that
the plugin asked for. torch's FSDP2 runs on CPU tensors with the gloo backend."""
import sys

from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

_init = AcceleratorState.__init__


def _init_keeping_fsdp(self, *args, fsdp_plugin=None, **kwargs):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    plugin = fsdp_plugin or getattr(self, "fsdp_plugin", None)
    if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP  # each AcceleratorState() re-reads PartialState's type
        self.fsdp_plugin = plugin


AcceleratorState.__init__ = _init_keeping_fsdp

if __name__ == "__main__":
    from rmkit.train.cli import main

    sys.exit(main())
