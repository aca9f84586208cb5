"""Training input per process: full-size decoding vs reduced-size decoding vs the image cache.

Each sample is a (current, prior) pair of full-resolution greyscale chest X-ray JPEGs (about 2544 x 3056, re-encoded
from the example pair), turned into model inputs the way training does it: `LibraDataset[i]` (load the two images)
then `LibraDataCollator([item])` (tokenise the record, pad, preprocess the pixels to 518 px). Three ways to get the
images, all library code paths:

- `exact`:   `LibraDataset(records, folder)` — full-size decode, RGB padding, the processor resizes (inference's path);
- `reduced`: `LibraDataset(records, folder, image_size=518)` — JPEG DCT-scaled decode + grey padding/resize (`load_square`);
- `cache`:   `LibraDataset(records, folder, cache=...)` — rows of a `build_image_cache` folder (built once, exact decoding);
- `grey first`: full-size decode, then grey padding/resize (`load_square(..., reduced=False)`, bit-identical to `exact`): not a
  dataset option, measured to show how much of the gain is grey-first and how much reduced decoding.

The three are timed in the same process, interleaved (exact, reduced, cache, then the next repetition with the order
rotated), so a neighbour's load on a shared machine hits all of them alike; the figures are medians over repetitions,
in wall-clock samples/s and in samples per CPU-second of this process (one torch thread). The pixel difference of each
path from the exact one is measured on the real example pair (`/work/shared/data`) and on the synthetic files.

    python benchmarks/decoding.py                         # ~3 minutes on one shared core
    python benchmarks/decoding.py --tiny --results_md ''  # smoke run (seconds)
"""
from __future__ import annotations
import argparse, os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))

HEADING = '## decoding'
MODES = ('exact', 'grey first', 'reduced', 'cache')
REAL_PAIR = [Path('/work/shared/data/example_curent.jpg'), Path('/work/shared/data/example_prior.jpg')]

def records_for(paths:list) -> list[dict]:
    "One training record per pair of files (current, prior), with a short report."
    return [{'id': f's{i}', 'image': [p.name, paths[(i + 1) % len(paths)].name],
             'conversations': [{'from': 'human', 'value': '<image>\nProvide a detailed description of the findings in the radiology image.'},
                               {'from': 'gpt', 'value': 'Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.'}]}
            for i, p in enumerate(paths)]

def grey_first_dataset(recs, folder, size:int):
    "A `LibraDataset` whose images are decoded at full size and padded/resized in grey (what the exact cache stores)."
    from libra_nb.dataset import LibraDataset
    from libra_nb.imaging import load_square
    class GreyFirst(LibraDataset):
        def load(self, path): return load_square(self.image_folder/path, self.image_size, reduced=False)
    return GreyFirst(recs, folder, image_size=size)

def time_round(ds, collate, n:int) -> tuple[float, float]:
    "Wall and CPU seconds of `n` samples through dataset + collator."
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n): collate([ds[i % len(ds)]])
    return time.perf_counter() - w0, time.process_time() - c0

def diff_stats(a, b) -> dict:
    d = (a - b).abs().flatten()
    return dict(mean_abs=float(d.mean()), p99_abs=float(d.kthvalue(max(1, int(0.99 * d.numel()))).values), max_abs=float(d.max()))

def fidelity(folder:Path, names:list[str], size:int, proc) -> dict:
    "pixel_values difference of the reduced path and the cache from the exact path, over the images `names` in `folder`."
    import torch
    from libra_nb.imaging import process_images, load_square
    from libra_nb.dataset import build_image_cache
    exact = process_images([folder/n for n in names], proc, pad='train')
    reduced = process_images([load_square(folder/n, size) for n in names], proc, pad='train')
    with tempfile.TemporaryDirectory() as d:
        c = build_image_cache(names, folder, d, size=size, progress=False)
        cached = process_images([c.image(n) for n in names], proc, pad='train')
    return {'reduced': diff_stats(reduced, exact), 'cache': diff_stats(cached, exact),
            'shape': list(exact.shape), 'dtype': str(exact.dtype), 'same_shape_dtype': reduced.shape == exact.shape and reduced.dtype == exact.dtype == torch.float32}

def measure(a) -> dict:
    from input_pipeline import make_jpegs
    from PIL import Image
    from libra_nb.conversation import train_tiny_tokenizer
    from libra_nb.dataset import LibraDataset, build_image_cache
    from libra_nb.imaging import rad_dino_processor
    from libra_nb.processing import LibraProcessor, LibraDataCollator
    proc = rad_dino_processor(size=a.size)
    collate = LibraDataCollator(LibraProcessor(proc, train_tiny_tokenizer()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_jpegs(tmp, a.n_files, size=(636, 764) if a.tiny else (2544, 3056))
        recs = records_for(paths)
        t0 = time.perf_counter(); c0 = time.process_time()
        cache = build_image_cache([p.name for p in paths], tmp, tmp/'cache', size=a.size, progress=False)
        build = dict(wall_s_per_image=(time.perf_counter() - t0) / len(paths), cpu_s_per_image=(time.process_time() - c0) / len(paths))
        dss = {'exact': LibraDataset(recs, tmp), 'grey first': grey_first_dataset(recs, tmp, a.size), 'reduced': LibraDataset(recs, tmp, image_size=a.size), 'cache': LibraDataset(recs, tmp, cache=cache)}
        for ds in dss.values(): time_round(ds, collate, 1)  # warm-up: first-call costs, file cache
        rounds = {m: [] for m in MODES}
        for r in range(a.reps):
            order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
            for m in order: rounds[m].append(time_round(dss[m], collate, a.n_samples))
        files = dict(n=len(paths), px='x'.join(map(str, Image.open(paths[0]).size)), mb=sum(p.stat().st_size for p in paths) / len(paths) / 1e6)
        synth = fidelity(tmp, [p.name for p in paths[:4]], a.size, proc)
    real = fidelity(REAL_PAIR[0].parent, [p.name for p in REAL_PAIR], a.size, proc) if all(p.is_file() for p in REAL_PAIR) else None
    rows = []
    for m in MODES:
        wall = statistics.median(w for w, _ in rounds[m]); cpu = statistics.median(c for _, c in rounds[m])
        rows.append(dict(mode=m, samples_per_s=a.n_samples / wall, samples_per_cpu_s=a.n_samples / cpu,
                         wall_s_per_sample=wall / a.n_samples, rounds=rounds[m]))
    for r in rows:
        r['x_exact'] = r['samples_per_s'] / rows[0]['samples_per_s']; r['x_exact_cpu'] = r['samples_per_cpu_s'] / rows[0]['samples_per_cpu_s']
    return dict(rows=rows, build=build, files=files, fidelity_real=real, fidelity_synthetic=synth)

def markdown(res:dict, a) -> str:
    f, rows = res['files'], res['rows']
    tab = ['| path | samples/s (wall) | samples per CPU-s | s per sample (wall) | x exact (wall) | x exact (CPU) |', '|---|---:|---:|---:|---:|---:|']
    tab += [f"| {r['mode']} | {r['samples_per_s']:.2f} | {r['samples_per_cpu_s']:.2f} | {r['wall_s_per_sample']:.3f} | {r['x_exact']:.1f} | {r['x_exact_cpu']:.1f} |" for r in rows]
    fid = ['| images | path | mean abs | 99th pct | max |', '|---|---|---:|---:|---:|']
    for name, fd in (('real example pair (3056x2544, 2021x2021)', res['fidelity_real']), (f"4 synthetic files ({f['px']})", res['fidelity_synthetic'])):
        if fd: fid += [f"| {name} | {k} | {fd[k]['mean_abs']:.4f} | {fd[k]['p99_abs']:.4f} | {fd[k]['max_abs']:.3f} |" for k in ('reduced', 'cache')]
    rows = {r['mode']: r for r in rows}; red, cac, grey = rows['reduced'], rows['cache'], rows['grey first']
    goal = red['x_exact']
    return '\n'.join([
        f"### {res['time']} — decoding ({'tiny smoke run, not a performance figure' if a.tiny else 'one process, this CPU'})", '',
        f"Machine: {res['machine']}; `nproc` {res['nproc']}; Python {res['python']}, torch {res['torch']}, Pillow {res['pillow']}, numpy {res['numpy']}.  ",
        f"Command: `{res['command']}`  ",
        f"Data: {f['n']} greyscale JPEGs of {f['px']} px ({f['mb']:.2f} MB each, quality 95, re-encoded from the example pair), 2 per sample; "
        f"each sample = `LibraDataset[i]` + `LibraDataCollator([item])` (tiny tokenizer; the text part is the same in every path). "
        f"{a.reps} repetitions of {a.n_samples} samples per path, interleaved with the order rotated; medians; torch threads {a.threads}. "
        f"The machine is shared with other jobs (load average above), so wall-clock rates are lower bounds; the CPU-time column "
        f"(this process only) is the steadier ratio. Cache build (exact decoding, one process): {res['build']['wall_s_per_image']:.2f} s per image.", '',
        *tab, '',
        f"Reduced-size decoding gives {goal:.1f}x the full-size samples/s per process (CPU time: {red['x_exact_cpu']:.1f}x; goal >= 5x: "
        f"{'met' if goal >= 5 else 'NOT met'}); the cache gives {cac['x_exact']:.1f}x ({cac['x_exact_cpu']:.1f}x). Grey first alone "
        f"(full-size decode, bit-identical pixels) gives {grey['x_exact']:.1f}x ({grey['x_exact_cpu']:.1f}x).", '',
        "Difference of the processor's `pixel_values` from the exact path (normalised units, range about 4; 1 grey level = 0.0152):", '',
        *fid, '',
        f"Shapes and dtypes equal the exact path's ({res['fidelity_synthetic']['shape']}, {res['fidelity_synthetic']['dtype']}); "
        "the exact-decoded cache is bit-identical to the exact path." + (f"  \nNote: {a.note}" if a.note else '')])

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n_files', type=int, default=8); ap.add_argument('--n_samples', type=int, default=8, help='samples per timed round')
    ap.add_argument('--reps', type=int, default=5); ap.add_argument('--size', type=int, default=518); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--tiny', action='store_true', help='small files, 2 repetitions (smoke run)')
    ap.add_argument('--json', default=None); ap.add_argument('--results_md', default=str(Path(__file__).resolve().parent/'RESULTS.md'))
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    if a.tiny: a.n_files, a.n_samples, a.reps = 4, 4, 2
    import numpy, PIL, platform, torch
    torch.set_num_threads(a.threads)
    from gpu_common import machine, now_utc, command_line, finish
    res = dict(benchmark='decoding', time=now_utc(), machine=machine('cpu'), nproc=len(os.sched_getaffinity(0)), command=command_line(),
               python=platform.python_version(), torch=torch.__version__, pillow=PIL.__version__, numpy=numpy.__version__, **measure(a))
    res['machine_end'] = machine('cpu')
    md = markdown(res, a)
    finish(res, a.json or Path(__file__).resolve().parent/'results'/f"decoding{'-tiny' if a.tiny else ''}.json", a.results_md, md, HEADING)

if __name__ == '__main__': main()
