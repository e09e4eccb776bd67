"""Runs ddp_bert_gloo.py (argv[1]) with the arguments after it, unchanged, and also
records each step's CPU time (time.process_time: every thread of the rank process,
gloo's included) in $BERTNODE_TORCH_CPU_DIR/rank<r>.jsonl, one JSON list per config
in the order the script runs its steps. bertnode bench ddp embeds this file."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import ddp_bert_gloo as d  # noqa: E402
import torch.distributed as dist  # noqa: E402

_one_step, _run_steps = d.one_step, d.run_steps
_cpu = []


def one_step(*args, **kwargs):
    c0 = time.process_time()
    r = _one_step(*args, **kwargs)
    _cpu.append(time.process_time() - c0)
    return r


def run_steps(*args, **kwargs):
    _cpu.clear()
    r = _run_steps(*args, **kwargs)
    with open(os.path.join(os.environ["BERTNODE_TORCH_CPU_DIR"], f"rank{dist.get_rank()}.jsonl"), "a") as f:
        f.write(json.dumps(_cpu) + "\n")
    return r


# Spawned ranks run this file's top level too (as __mp_main__), so they are patched.
d.one_step, d.run_steps = one_step, run_steps

if __name__ == "__main__":
    sys.argv = sys.argv[1:]
    sys.exit(d.main())
