"""Time and peak memory of Libra's TAC projector at full size (N 1369, D 768, H 4096, 12 layers).

Forward (eval, no grad) and forward+backward (train mode, loss = mean of the output, gradients for
all TAC parameters; the vision features need no grad since the encoder is frozen). Each
(batch size, mode) runs in a fresh subprocess so the CPU peak (max RSS) belongs to that case only.
CPU memory = peak RSS minus RSS after building the model and inputs (activations, gradients, workspace);
CUDA memory = `torch.cuda.max_memory_allocated` (model, inputs and work).

    python benchmarks/tac.py --batch_sizes 1,2 --reps 2                  # CPU
    python benchmarks/tac.py --device cuda --batch_sizes 1,2,4 --dtype bfloat16
"""
import json, os, shlex, statistics, platform, resource, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path
from fastcore.script import call_parse
from results_md import append_results

def _rss_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

def _one_case(case:dict) -> dict:
    "Run one (batch size, mode) case in this process and return its timings and memory."
    import torch
    from libra_nb.tac import TAC
    torch.set_num_threads(case['threads']); torch.manual_seed(0)
    dev, dt = torch.device(case['device']), getattr(torch, case['dtype'])
    tac = TAC(case['d'], case['h'], case['heads'], case['layers']).to(dev, dt)
    x = [torch.randn(case['b'], case['layers'], case['n'], case['d'], device=dev, dtype=dt) for _ in range(2)]
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    def step():
        if case['mode'] == 'forward':
            with torch.inference_mode(): tac(*x)
        else:
            tac.zero_grad(set_to_none=True); tac(*x).float().mean().backward()
    tac.train(case['mode'] != 'forward')
    sync(); base = _rss_mb()  # model + inputs; the peak above it is activations, gradients and workspace
    for _ in range(case['warmup']): step()
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(case['reps']):
        t0 = time.perf_counter(); step(); sync(); times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    return dict(case, median_s=statistics.median(times), min_s=min(times), peak_mb=peak)

def _machine(device:str) -> str:
    import torch
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    s = f"{cpu}, {os.cpu_count()} logical CPUs visible, torch {torch.__version__}, Python {platform.python_version()}"
    if device == 'cuda': s = f"{torch.cuda.get_device_name()}; host {s}"
    return s

def _table(rows) -> str:
    out = ["| B | mode | median s | min s | peak MiB | samples/s |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['b']} | {r['mode']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['peak_mb']:.0f} | {r['b'] / r['median_s']:.2f} |")
    return '\n'.join(out)

@call_parse
def main(device:str='cpu',            # 'cpu' or 'cuda'
         batch_sizes:str='1,2,4',     # comma-separated batch sizes B
         modes:str='forward,forward_backward', # which measurements
         dtype:str='float32',         # float32, bfloat16 or float16
         reps:int=3,                  # timed repetitions (median reported)
         warmup:int=1,                # untimed repetitions first
         threads:int=1,               # torch CPU threads (the CI box is shared)
         n:int=1369, d:int=768, h:int=4096, heads:int=32, layers:int=12, # Libra 7B shapes
         note:str='',                 # free text recorded with the results (e.g. "CPU shared with other jobs")
         results:str=str(Path(__file__).parent/'RESULTS.md'), # where to append; '' to only print
         _case:str=''):               # internal: run one JSON-encoded case and print its result
    if _case: print(json.dumps(_one_case(json.loads(_case)))); return
    rows = []
    for b in [int(x) for x in batch_sizes.split(',')]:
        for mode in modes.split(','):
            case = dict(device=device, dtype=dtype, b=b, mode=mode, reps=reps, warmup=warmup, threads=threads,
                        n=n, d=d, h=h, heads=heads, layers=layers)
            r = subprocess.run([sys.executable, __file__, '--_case', json.dumps(case)], capture_output=True, text=True)
            if r.returncode: sys.exit(f"case {case} failed:\n{r.stderr[-3000:]}")
            rows.append(json.loads(r.stdout.strip().split('\n')[-1])); print(_table(rows[-1:]).split('\n')[-1], flush=True)
    cmd = shlex.join(['python', 'benchmarks/tac.py', *sys.argv[1:]])
    text = (f"### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {device}, {dtype}, threads={threads}\n\n"
            f"Machine: {_machine(device)}.  \nCommand: `{cmd}`  \nShapes: N {n}, D {d}, H {h}, heads {heads}, layers {layers}; "
            f"{warmup} warm-up + {reps} timed reps per case." + (f"  \nNote: {note}" if note else '') + '\n\n' + _table(rows))
    print('\n' + text)
    if results: append_results(text, '## tac', Path(results))
