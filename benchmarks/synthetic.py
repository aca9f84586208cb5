#!/usr/bin/env python
"""Studies per second written by `libra_nb.synthetic.make_cohort` at 224 and 518 px.

Each (image size, worker processes) case writes a fresh cohort into a temporary folder (images,
reports, the three CSVs) and is timed end to end, best of `--repeats`. Appends the figures with the
machine, its load average and the command to benchmarks/RESULTS.md under `## synthetic`.

    python benchmarks/synthetic.py                                  # 224 and 518 px, 1 process and 2 workers
    python benchmarks/synthetic.py --sizes 224 --n_workers 0 --no_record
"""
from __future__ import annotations
import os, sys, time, platform, tempfile, datetime, resource
from pathlib import Path
import numpy as np, PIL
from fastcore.script import call_parse
from results_md import append_results
from libra_nb.synthetic import make_cohort

def machine() -> str:
    "CPU model, cores, load average and library versions, in one line."
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, load average {load} at start; Python {platform.python_version()}, "
            f"numpy {np.__version__}, Pillow {PIL.__version__}")

def _cpu_seconds() -> float:
    "User + system CPU time of this process and its finished children (the worker processes)."
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))

def run_case(size:int, workers:int, n_patients:int, max_studies:int, seed:int, repeats:int) -> dict:
    "Best-of-`repeats` wall time of one cohort (and the CPU time of that run), with its counts and bytes on disk."
    best = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            t, cpu = time.perf_counter(), _cpu_seconds()
            c = make_cohort(d, n_patients=n_patients, max_studies_per_patient=max_studies, image_size=size, seed=seed, n_workers=workers)
            wall, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
            mb = sum(p.stat().st_size for p in Path(d).rglob('*') if p.is_file()) / 2**20
        if best is None or wall < best['wall']: best = dict(wall=wall, cpu=cpu, studies=c.n_studies, images=c.n_images, mb=mb)
    return dict(size=size, workers=workers, **best)

def _markdown(rows:list[dict], cmd:str, mach:str, n_patients:int, max_studies:int, seed:int, repeats:int) -> str:
    "The result of `main` as a markdown section: heading, machine, settings and one table row per case."
    lines = ['| image size | processes | studies | images | MB written | wall s | CPU s | studies/s (wall) | images/s (wall) | studies per CPU-s |',
             '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['size']} | {max(r['workers'], 1)} | {r['studies']} | {r['images']} | {r['mb']:.1f} | {r['wall']:.2f} | {r['cpu']:.2f} "
                     f"| {r['studies'] / r['wall']:.0f} | {r['images'] / r['wall']:.0f} | {r['studies'] / r['cpu']:.0f} |")
    return (f"### {datetime.datetime.now():%Y-%m-%d %H:%M} — `{cmd}`\n\n"
            f"Machine: {mach}. The CPU was shared with other processes (other helpers' tests and notebooks), so the wall-clock "
            "rates are lower bounds; studies per CPU-second (this process and its workers) estimates what one idle core would give, file-system waits excluded.\n"
            f"Each row writes a fresh cohort ({n_patients} patients, up to {max_studies} studies each, seed {seed}: JPEG images, "
            f"reports and CSVs) into a temporary folder; best of {repeats}.\n\n" + '\n'.join(lines) + '\n')

@call_parse
def main(sizes:str='224,518',    # comma-separated image sizes (height in pixels)
         n_workers:str='0,2',    # comma-separated worker-process counts (0: the calling process only)
         n_patients:int=60,      # patients per cohort
         max_studies:int=6,      # most studies per patient
         repeats:int=2,          # timed runs per case (the best is reported)
         seed:int=0,             # cohort seed
         no_record:bool=False,   # print only; do not append to benchmarks/RESULTS.md
        ):
    "Time make_cohort at several image sizes and worker counts; report studies/s and images/s."
    cmd = 'python ' + ' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    mach = machine()
    make_cohort(tempfile.mkdtemp(), n_patients=2, max_studies_per_patient=2, image_size=64)  # warm imports and caches
    rows = [run_case(int(s), int(w), n_patients, max_studies, seed, repeats)
            for s in sizes.split(',') for w in n_workers.split(',')]
    text = _markdown(rows, cmd, mach, n_patients, max_studies, seed, repeats)
    print(text)
    if not no_record: append_results(text, '## synthetic')
