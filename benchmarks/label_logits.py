"""Training step with full logits vs label-only logits: step time and peak memory on CPU.

A Libra model with a mid-size LM head (vocabulary 32,000) and a small body (hidden 256, 2 layers by default) runs
forward + backward on a 1,700-token sequence of which the last 300 tokens are labelled, once with the plain path
(`model(**batch)`: logits at every position, transformers' loss) and once with `model(**batch, loss_logits='labels')`
(logits and cross-entropy only at the labelled positions). All parameters train (stage 2's case; stage 1 differs only
in which gradients are kept).

Peak memory: every measurement runs in a fresh child process with `MALLOC_MMAP_THRESHOLD_=65536`, so glibc serves
every tensor above 64 KiB from its own mapping and returns it to the system when freed (the resident set then follows
the live tensors instead of a heap that keeps freed memory). Before each timed step the child resets the kernel's
resident-set high-water mark (`echo 5 > /proc/self/clear_refs`) and reads its resident set; the step's peak is the high-
water mark after the step (`VmHWM`) minus that. It counts everything the step allocates (activations, logits, softmax,
gradients), not the model and the inputs that exist before it. The variants alternate (plain, labels, labels, plain,
...) over the repetitions, so a neighbour's load on a shared machine hits both alike; figures are medians.

    python benchmarks/label_logits.py                          # ~2 minutes on one shared core
    python benchmarks/label_logits.py --tiny --results_md ''   # smoke run
"""
from __future__ import annotations
import argparse, json, os, re, statistics, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))

HEADING = '## label_logits'
VARIANTS = ('all', 'labels')

def _status_kib(key:str) -> int:
    return int(re.search(rf'^{key}:\s+(\d+) kB', Path('/proc/self/status').read_text(), re.M).group(1))

def child(a) -> dict:
    "One process: build the model and batch, one warm-up step, then `a.steps` measured steps of variant `a.child`."
    import gc, torch
    from libra_nb.modeling import LibraForConditionalGeneration, tiny_libra_config
    torch.set_num_threads(a.threads)
    cfg = tiny_libra_config(a.vocab, hidden_size=a.hidden, vision_layers=1)
    cfg.text_config.num_hidden_layers, cfg.text_config.max_position_embeddings = a.layers, max(4096, a.seq)
    torch.manual_seed(0)
    model = LibraForConditionalGeneration._from_config(cfg, attn_implementation='sdpa').train()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, a.vocab, (a.batch, a.seq), generator=g)
    labels = torch.full_like(ids, -100); labels[:, -a.labels:] = ids[:, -a.labels:]
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, use_cache=False)
    kw = {} if a.child == 'all' else {'loss_logits': 'labels'}
    def step():
        model.zero_grad(set_to_none=True)
        loss = model(**batch, **kw).loss
        loss.backward()
        return float(loss)
    loss = step()  # warm-up (first-call allocations, kernels)
    times, peaks = [], []
    for _ in range(a.steps):
        model.zero_grad(set_to_none=True); gc.collect()
        Path('/proc/self/clear_refs').write_text('5')
        rss0 = _status_kib('VmRSS')
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
        peaks.append((_status_kib('VmHWM') - rss0) / 1024)
    n_params = sum(p.numel() for p in model.parameters())
    return dict(variant=a.child, loss=loss, step_s=times, peak_mib=peaks, params=n_params)

def run_child(a, variant:str) -> dict:
    args = [sys.executable, __file__, '--child', variant] + [f'--{k}={getattr(a, k)}' for k in ('vocab', 'hidden', 'layers', 'seq', 'labels', 'batch', 'steps', 'threads')]
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536', 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(f"child {variant} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def measure(a) -> dict:
    runs = {v: [] for v in VARIANTS}
    for r in range(a.reps):
        for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]): runs[v].append(run_child(a, v))
    rows = []
    for v in VARIANTS:
        t = [x for run in runs[v] for x in run['step_s']]; p = [x for run in runs[v] for x in run['peak_mib']]
        rows.append(dict(variant=v, step_s=statistics.median(t), step_s_min=min(t), peak_mib=statistics.median(p),
                         peak_mib_max=max(p), loss=runs[v][0]['loss'], n=len(t)))
    full, lab = rows
    return dict(rows=rows, params=runs['all'][0]['params'], time_ratio=full['step_s'] / lab['step_s'],
                mem_ratio=full['peak_mib'] / lab['peak_mib'], loss_diff=abs(full['loss'] - lab['loss']),
                logits_mib=a.batch * a.seq * a.vocab * 4 / 2**20, label_logits_mib=a.batch * (a.labels - 1) * a.vocab * 4 / 2**20)

def markdown(res:dict, a) -> str:
    full, lab = res['rows']
    name = {'all': 'full logits (`model(**batch)`)', 'labels': "label-only logits (`loss_logits='labels'`)"}
    tab = ['| loss path | step s (median) | step s (min) | peak MiB (median) | peak MiB (max) | loss |', '|---|---:|---:|---:|---:|---:|']
    tab += [f"| {name[r['variant']]} | {r['step_s']:.3f} | {r['step_s_min']:.3f} | {r['peak_mib']:.0f} | {r['peak_mib_max']:.0f} | {r['loss']:.6f} |" for r in res['rows']]
    return '\n'.join([
        f"### {res['time']} — label_logits ({'tiny smoke run, not a performance figure' if a.tiny else 'CPU, float32'})", '',
        f"Machine: {res['machine']}; `nproc` {res['nproc']}; Python {res['python']}, torch {res['torch']}, transformers {res['transformers']}.  ",
        f"Command: `{res['command']}`  ",
        f"Model: Libra with a Llama LM of vocabulary {a.vocab:,}, hidden {a.hidden}, {a.layers} layers ({res['params'] / 1e6:.1f} M parameters, all trained), "
        f"float32, SDPA attention, no gradient checkpointing; batch {a.batch} x {a.seq:,} tokens, the last {a.labels} labelled (text only, no image). "
        f"Forward + backward per step; {a.reps} child processes per variant (alternating order) x {a.steps} measured steps after one warm-up; "
        f"torch threads {a.threads}. Peak = the step's rise of the resident set's high-water mark over the resident set before it, "
        f"in a fresh process per measurement with `MALLOC_MMAP_THRESHOLD_=65536` (method in the script's docstring). The machine is "
        f"shared with other jobs (load average above): step times are upper bounds, the memory figures do not depend on the load.", '',
        *tab, '',
        f"Label-only logits: {res['mem_ratio']:.1f}x less peak memory (goal >= 2x: {'met' if res['mem_ratio'] >= 2 else 'NOT met'}) and "
        f"{res['time_ratio']:.1f}x faster steps; the losses differ by {res['loss_diff']:.1e}. For scale: the full logits alone are "
        f"{res['logits_mib']:.0f} MiB in float32, the label-only ones {res['label_logits_mib']:.0f} MiB. With a 7B body (hidden 4096, 32 layers) "
        "the body's activations are a larger share of the step, so the memory ratio there is smaller; the saving in MiB is the same "
        "per position and vocabulary entry." + (f"  \nNote: {a.note}" if a.note else '')])

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--vocab', type=int, default=32000); ap.add_argument('--hidden', type=int, default=256)
    ap.add_argument('--layers', type=int, default=2); ap.add_argument('--seq', type=int, default=1700)
    ap.add_argument('--labels', type=int, default=300); ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--reps', type=int, default=3, help='child processes per variant'); ap.add_argument('--steps', type=int, default=2, help='measured steps per child')
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--tiny', action='store_true')
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--json', default=None); ap.add_argument('--results_md', default=str(Path(__file__).resolve().parent/'RESULTS.md'))
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    if a.child: print(json.dumps(child(a))); return
    if a.tiny: a.vocab, a.seq, a.labels, a.hidden, a.reps, a.steps = 2000, 300, 60, 64, 1, 1
    import platform, torch, transformers
    from gpu_common import machine, now_utc, command_line, finish
    res = dict(benchmark='label_logits', time=now_utc(), machine=machine('cpu'), nproc=len(os.sched_getaffinity(0)), command=command_line(),
               python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__, **measure(a))
    md = markdown(res, a)
    finish(res, a.json or Path(__file__).resolve().parent/'results'/f"label_logits{'-tiny' if a.tiny else ''}.json", a.results_md, md, HEADING)

if __name__ == '__main__': main()
