"""The training-step levers of `TrainConfig`, side by side on CPU: gradient checkpointing per stage (step time
and peak memory), `group_by_length` (an epoch of mixed-length batches) and `torch_compile` (compiled vs eager decoder layers).

Every model is a Libra with a Llama LM (vocabulary 32,000, hidden 256) and a small Dinov2 encoder; the loss is the
library's default (`loss_logits='labels'`), the KV cache is off, as in `LibraTrainer.training_step`.

- `checkpointing`: stage 1 (TAC trains, LM frozen) and stage 2 (LoRA r 128 on the 7 projections) with and without
  gradient checkpointing (non-reentrant, as the trainer enables it), 4 LM layers, batch 2 x 1,024 tokens + 64 image
  embeddings. Each measurement runs in a fresh child process with `MALLOC_MMAP_THRESHOLD_=65536` and reads the step's
  peak as the rise of the resident set's high-water mark over the resident set before the step (method of
  `label_logits.py`); variants alternate over the repetitions.
- `group_by_length`: 96 text samples of 64-1,024 tokens (uniform), micro-batches of 8, right-padded to the longest as
  `LibraDataCollator` pads: one epoch of forward + backward steps (no optimiser step, so the weights stay fixed) in the
  `EpochSampler` order vs the `LengthGroupedSampler` order, alternating in one process. The token-weighted loss of the
  epoch is the same in both orders (it is a sum over the same samples), which the script checks.
- `compile`: two copies of one model, one with `compile_layers` (inductor), one eager, alternating steps on the same
  batch (2 x 512 tokens, fixed shape so the compile happens once); the first compiled step's time is the compile.

    python benchmarks/step_levers.py                          # ~8 minutes on the shared 2-core CPU
    python benchmarks/step_levers.py --only compile --reps 3  # one part
    python benchmarks/step_levers.py --tiny --results_md ''   # smoke run
"""
from __future__ import annotations
import argparse, json, os, re, statistics, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))

HEADING = '## step_levers'
PARTS = ('checkpointing', 'group_by_length', 'compile')

def _status_kib(key:str) -> int:
    return int(re.search(rf'^{key}:\s+(\d+) kB', Path('/proc/self/status').read_text(), re.M).group(1))

def build(a, layers:int, image_size:int=112):
    "A Libra model of the benchmark's shape (train mode)."
    import torch
    from libra_nb.modeling import LibraForConditionalGeneration, tiny_libra_config
    cfg = tiny_libra_config(a.vocab, hidden_size=a.hidden, vision_layers=2, image_size=image_size)
    cfg.text_config.num_hidden_layers, cfg.text_config.max_position_embeddings = layers, 4096
    torch.manual_seed(0)
    return LibraForConditionalGeneration._from_config(cfg, attn_implementation='sdpa').train()

def text_batch(lengths, vocab:int, labels:int=300, samples=None) -> dict:
    "Right-padded token batch (the collator's padding) of samples `samples` (their ids seed their tokens), the last `labels` tokens labelled."
    import torch
    n, samples = max(lengths), samples or range(len(lengths))
    ids = torch.zeros(len(lengths), n, dtype=torch.long); mask = torch.zeros_like(ids); lab = torch.full_like(ids, -100)
    for i, (l, j) in enumerate(zip(lengths, samples)):
        ids[i, :l] = torch.randint(3, vocab, (l,), generator=torch.Generator().manual_seed(j)); mask[i, :l] = 1
        lab[i, max(1, l - labels):l] = ids[i, max(1, l - labels):l]
    return dict(input_ids=ids, attention_mask=mask, labels=lab, use_cache=False)

def step(model, batch) -> float:
    "One training micro-step as the trainer runs it (forward with label-only logits, backward)."
    model.zero_grad(set_to_none=True)
    loss = model(**batch, loss_logits='labels').loss
    loss.backward()
    return float(loss.detach())

def ckpt_child(a) -> dict:
    "One process: stage `a.stage`, checkpointing `a.ckpt`; a warm-up step, then `a.steps` measured steps."
    import gc, torch
    from libra_nb.core import IMAGE_TOKEN_INDEX
    from libra_nb.stages import TrainConfig, set_trainable, ensure_lora
    torch.set_num_threads(a.threads)
    model = build(a, a.ckpt_layers)
    if a.stage == 2: ensure_lora(model, TrainConfig(stage=2))
    set_trainable(model, a.stage)
    if a.ckpt: model.activation_checkpointing_enable(activation_checkpointing_kwargs={'use_reentrant': False})
    batch = text_batch([a.seq] * a.batch, a.vocab)
    batch['input_ids'][:, 1] = IMAGE_TOKEN_INDEX
    batch['pixel_values'] = torch.randn(a.batch, 2, 3, 112, 112, generator=torch.Generator().manual_seed(2))
    loss = step(model, batch)
    times, peaks = [], []
    for _ in range(a.steps):
        model.zero_grad(set_to_none=True); gc.collect()
        Path('/proc/self/clear_refs').write_text('5')
        rss0 = _status_kib('VmRSS')
        t0 = time.perf_counter(); step(model, batch); times.append(time.perf_counter() - t0)
        peaks.append((_status_kib('VmHWM') - rss0) / 1024)
    return dict(stage=a.stage, ckpt=a.ckpt, loss=loss, step_s=times, peak_mib=peaks,
                trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))

def run_child(a, stage:int, ckpt:int) -> dict:
    keys = ('vocab', 'hidden', 'ckpt_layers', 'seq', 'batch', 'steps', 'threads')
    args = [sys.executable, __file__, '--child', f'--stage={stage}', f'--ckpt={ckpt}'] + [f'--{k}={getattr(a, k)}' for k in keys]
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536', 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(f"child stage {stage} ckpt {ckpt} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def checkpointing(a) -> list[dict]:
    "Stage x checkpointing, each in `a.reps` fresh processes, alternating."
    variants = [(s, c) for s in (1, 2) for c in (0, 1)]
    runs = {v: [] for v in variants}
    for r in range(a.reps):
        for v in (variants if r % 2 == 0 else variants[::-1]): runs[v].append(run_child(a, *v))
    rows = []
    for (s, c), rr in runs.items():
        t = [x for x in sum((x['step_s'] for x in rr), [])]; p = [x for x in sum((x['peak_mib'] for x in rr), [])]
        rows.append(dict(stage=s, ckpt=bool(c), step_s=statistics.median(t), step_s_min=min(t), peak_mib=statistics.median(p),
                         peak_mib_max=max(p), loss=rr[0]['loss'], trainable=rr[0]['trainable'], n=len(t)))
    return rows

def group_by_length(a) -> dict:
    "One epoch of steps in the plain shuffled order vs the length-grouped order, alternating `a.reps` times."
    import torch
    from libra_nb.stages import LengthGroupedSampler
    from libra_nb.trainer import EpochSampler
    torch.set_num_threads(a.threads)
    lengths = torch.randint(64, 1025, (a.samples,), generator=torch.Generator().manual_seed(0)).tolist()
    orders = {'random': list(EpochSampler(a.samples, seed=0)), 'grouped': list(LengthGroupedSampler(lengths, a.group_batch, seed=0))}
    model = build(a, a.group_layers)
    def epoch(order):
        t, tok_loss, n_tok, padded = 0.0, 0.0, 0, 0
        for i in range(0, len(order), a.group_batch):
            js = order[i:i + a.group_batch]; ls = [lengths[j] for j in js]
            b = text_batch(ls, a.vocab, samples=js)
            t0 = time.perf_counter(); loss = step(model, b); t += time.perf_counter() - t0
            k = int((b['labels'][:, 1:] != -100).sum()); tok_loss += loss * k; n_tok += k; padded += len(ls) * max(ls)
        return t, tok_loss / n_tok, 1 - sum(lengths) / padded
    step(model, text_batch([256] * a.group_batch, a.vocab))  # warm-up
    res = {k: [] for k in orders}
    for r in range(a.reps):
        for k in (list(orders) if r % 2 == 0 else list(orders)[::-1]): res[k].append(epoch(orders[k]))
    return {k: dict(epoch_s=statistics.median(x[0] for x in v), epoch_s_min=min(x[0] for x in v), loss=v[0][1], padding=v[0][2],
                    steps=len(orders[k]) // a.group_batch) for k, v in res.items()}

def compile_vs_eager(a) -> dict:
    "Alternating steps of an eager and a compiled copy of one model on one fixed-shape batch."
    import torch
    from libra_nb.stages import compile_layers
    torch.set_num_threads(a.threads)
    eager, comp = build(a, a.group_layers), build(a, a.group_layers)
    compile_layers(comp)
    b = text_batch([a.compile_seq] * 2, a.vocab)
    step(eager, b)
    t0 = time.perf_counter(); first = step(comp, b); compile_s = time.perf_counter() - t0
    times = {'eager': [], 'compiled': []}; losses = {'eager': step(eager, b), 'compiled': first}
    for r in range(a.compile_steps):
        for k, m in ((('eager', eager), ('compiled', comp)) if r % 2 == 0 else (('compiled', comp), ('eager', eager))):
            t0 = time.perf_counter(); step(m, b); times[k].append(time.perf_counter() - t0)
    return dict(compile_s=compile_s, loss_diff=abs(losses['eager'] - losses['compiled']),
                **{f'{k}_s': statistics.median(v) for k, v in times.items()}, **{f'{k}_s_min': min(v) for k, v in times.items()})

def markdown(res:dict, a) -> str:
    out = [f"### {res['time']} — step_levers ({'tiny smoke run, not a performance figure' if a.tiny else 'CPU, float32'})", '',
           f"Machine: {res['machine']}; `nproc` {res['nproc']}; Python {res['python']}, torch {res['torch']}, transformers {res['transformers']}.  ",
           f"Command: `{res['command']}`  ",
           f"Model: Libra, Llama LM of vocabulary {a.vocab:,} and hidden {a.hidden}, Dinov2 encoder (2 layers, 112 px: 64 image embeddings), "
           f"float32, SDPA attention, label-only loss; torch threads {a.threads}. The 2 cores are shared with other jobs (load average "
           "above): step times are upper bounds, and only the ratios within one part (measured alternating) compare." +
           (f"  \nNote: {a.note}" if a.note else ''), '']
    if 'checkpointing' in res: out += ckpt_md(res['checkpointing'], a)
    if 'group_by_length' in res: out += group_md(res['group_by_length'], a)
    if 'compile' in res: out += compile_md(res['compile'], a)
    return '\n'.join(out)

def ckpt_md(rows, a) -> list[str]:
    tab = [f"**Gradient checkpointing** ({a.ckpt_layers} LM layers, batch {a.batch} x {a.seq:,} tokens + 64 image embeddings; "
           f"{a.reps} fresh processes per variant x {a.steps} steps, medians):", '',
           '| stage | trains | checkpointing | step s (median) | step s (min) | peak MiB (median) | peak MiB (max) | loss |',
           '|---|---|---|---:|---:|---:|---:|---:|']
    for r in rows:
        what = 'TAC' if r['stage'] == 1 else 'LoRA'
        tab.append(f"| {r['stage']} | {what} ({r['trainable'] / 1e6:.2f} M) | {'on' if r['ckpt'] else 'off'} | {r['step_s']:.3f} | "
                   f"{r['step_s_min']:.3f} | {r['peak_mib']:.0f} | {r['peak_mib_max']:.0f} | {r['loss']:.6f} |")
    by = {(r['stage'], r['ckpt']): r for r in rows}
    tab += ['', ' '.join(f"Stage {s}: checkpointing takes {by[(s, False)]['peak_mib'] / by[(s, True)]['peak_mib']:.2f}x less peak memory "
                         f"for {by[(s, True)]['step_s'] / by[(s, False)]['step_s']:.2f}x the step time." for s in (1, 2)), '']
    return tab

def group_md(g, a) -> list[str]:
    r, s = g['random'], g['grouped']
    return [f"**group_by_length** ({a.samples} samples of 64-1,024 tokens, uniform; micro-batches of {a.group_batch}; {a.group_layers} LM layers; "
            f"{a.reps} epochs per order, alternating; forward + backward, weights fixed):", '',
            '| order | steps | padding % | epoch s (median) | epoch s (min) | token-weighted loss |', '|---|---:|---:|---:|---:|---:|',
            f"| shuffled (`EpochSampler`) | {r['steps']} | {100 * r['padding']:.1f} | {r['epoch_s']:.2f} | {r['epoch_s_min']:.2f} | {r['loss']:.6f} |",
            f"| grouped (`LengthGroupedSampler`) | {s['steps']} | {100 * s['padding']:.1f} | {s['epoch_s']:.2f} | {s['epoch_s_min']:.2f} | {s['loss']:.6f} |",
            '', f"Length-grouped batches: {r['epoch_s'] / s['epoch_s']:.2f}x faster epochs (min: {r['epoch_s_min'] / s['epoch_s_min']:.2f}x); "
            f"the epoch's loss differs by {abs(r['loss'] - s['loss']):.1e}.", '']

def compile_md(c, a) -> list[str]:
    return [f"**torch.compile** of the decoder layers (inductor, default mode; {a.group_layers} LM layers, batch 2 x {a.compile_seq} tokens; "
            f"{a.compile_steps} steps each after warm-up, alternating):", '',
            '| layers | step s (median) | step s (min) |', '|---|---:|---:|',
            f"| eager | {c['eager_s']:.3f} | {c['eager_s_min']:.3f} |", f"| compiled | {c['compiled_s']:.3f} | {c['compiled_s_min']:.3f} |", '',
            f"Compiled / eager step time: {c['compiled_s'] / c['eager_s']:.2f}x (min: {c['compiled_s_min'] / c['eager_s_min']:.2f}x); "
            f"the first compiled step (the compile) took {c['compile_s']:.0f} s; the losses differ by {c['loss_diff']:.1e}.", '']

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--vocab', type=int, default=32000); ap.add_argument('--hidden', type=int, default=256)
    ap.add_argument('--ckpt_layers', type=int, default=4); ap.add_argument('--seq', type=int, default=1024); ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--steps', type=int, default=2, help='measured steps per child'); ap.add_argument('--reps', type=int, default=2)
    ap.add_argument('--samples', type=int, default=96); ap.add_argument('--group_batch', type=int, default=8); ap.add_argument('--group_layers', type=int, default=2)
    ap.add_argument('--compile_seq', type=int, default=512); ap.add_argument('--compile_steps', type=int, default=6)
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--only', default=','.join(PARTS)); ap.add_argument('--tiny', action='store_true')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--stage', type=int, default=1, help=argparse.SUPPRESS); ap.add_argument('--ckpt', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--json', default=None); ap.add_argument('--results_md', default=str(Path(__file__).resolve().parent/'RESULTS.md'))
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    if a.child: print(json.dumps(ckpt_child(a))); return
    if a.tiny: a.vocab, a.hidden, a.seq, a.samples, a.compile_seq, a.reps, a.steps, a.compile_steps = 2000, 64, 256, 32, 64, 1, 1, 2
    import platform, torch, transformers
    from gpu_common import machine, now_utc, command_line, finish
    res = dict(benchmark='step_levers', time=now_utc(), machine=machine('cpu'), nproc=len(os.sched_getaffinity(0)), command=command_line(),
               python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__)
    parts = a.only.split(',')
    if 'checkpointing' in parts: res['checkpointing'] = checkpointing(a)
    if 'group_by_length' in parts: res['group_by_length'] = group_by_length(a)
    if 'compile' in parts: res['compile'] = compile_vs_eager(a)
    md = markdown(res, a)
    finish(res, a.json or Path(__file__).resolve().parent/'results'/f"step_levers{'-tiny' if a.tiny else ''}.json", a.results_md, md, HEADING)

if __name__ == '__main__': main()
