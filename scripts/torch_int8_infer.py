#!/usr/bin/python3
"""PyTorch's side of scripts/bench-int8.sh: the minimal BERT of ../shared/bench/
bert_step_torch.py (path in --bert), in eval mode under inference_mode on --threads
threads, in float32 and after torch.ao.quantization.quantize_dynamic with per-channel
int8 weights on its encoder layers' Linear modules (bertnode's Quantize does the same
layers), in the first of the x86, fbgemm and onednn engines this torch has.

For each shape B x S (full-length sequences, random ids) it prints one line:
    preset BxS float32_ms int8_ms
each the median of --iters forwards, the two alternating, after --warmup of each, each
forward on new random ids.
"""
import argparse
import importlib.util
import statistics
import time

import torch
import torch.nn as nn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bert", required=True, help="path of bert_step_torch.py")
    ap.add_argument("--preset", required=True)
    ap.add_argument("--shapes", default="1x25,16x40,32x128")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=6)
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location("bert_step_torch", args.bert)
    bert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bert)
    torch.set_num_threads(args.threads)
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("x86", "fbgemm", "onednn") if e in engines), None)
    if engine is None:
        raise SystemExit(f"torch {torch.__version__} has none of the x86, fbgemm and onednn engines: {engines}")
    torch.backends.quantized.engine = engine

    torch.manual_seed(0)
    L, H, A, I = bert.CONFIGS[args.preset]
    f32 = bert.BertClassifier(L, H, A, I).eval()
    i8 = bert.BertClassifier(L, H, A, I).eval()
    i8.load_state_dict(f32.state_dict())
    i8.layers = torch.ao.quantization.quantize_dynamic(
        i8.layers, {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8)

    g = torch.Generator().manual_seed(1)
    for shape in args.shapes.split(","):
        B, S = (int(x) for x in shape.split("x"))
        # a new input each time, as served inputs are (and as bertnode's side runs)
        ids = [torch.randint(0, bert.VOCAB, (B, S), generator=g) for _ in range(args.warmup + args.iters)]
        types = torch.zeros(B, S, dtype=torch.long)
        times = {"f32": [], "i8": []}
        with torch.inference_mode():
            for it in range(args.warmup + args.iters):
                for name, m in (("f32", f32), ("i8", i8)):
                    t0 = time.perf_counter()
                    m(ids[it], types)
                    if it >= args.warmup:
                        times[name].append((time.perf_counter() - t0) * 1e3)
        print(f"{args.preset} {shape} {statistics.median(times['f32']):.3f} {statistics.median(times['i8']):.3f} {engine}", flush=True)


if __name__ == "__main__":
    main()
