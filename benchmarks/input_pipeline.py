"""Input pipeline of Libra training: decode two full-resolution chest X-ray JPEGs per sample and preprocess them to 518 px.

Each sample is a (current, prior) pair of MIMIC-CXR-JPG-sized greyscale JPEGs (about 3000 x 2500), loaded with
`libra_nb.imaging.load_image`, padded to a square (black, as in training) and preprocessed with RAD-DINO's processor
(`process_images(..., pad='train')`) into a `(2, 3, 518, 518)` tensor — exactly what `LibraDataCollator` does per
sample. Measured: the stages alone in one process (decode, pad + processor), then whole samples through a torch
`DataLoader` with N workers, for three decoding modes: 'full size' (the library today), 'draft' (PIL `Image.draft`:
JPEG DCT scaling by 1/2, 1/4 or 1/8 so the decoded image keeps at least the target side) and 'draft + grey resize'
(draft, then pad and resize to the target in one grey channel before the RGB conversion), with the pixel difference
each fast mode makes after preprocessing. Library code is not changed here: the fast modes are measured prototypes.
The goal: pipeline samples/s >= 1.5x the training samples/s with the default 4 workers.

    python benchmarks/input_pipeline.py --tiny                                  # CPU smoke run (< 60 s)
    python benchmarks/input_pipeline.py --workers 0,1,2,4,8 --train_samples_per_s 10
    python benchmarks/input_pipeline.py --train_json benchmarks/results/gpu_train.json   # compare with a gpu_train run
"""
from __future__ import annotations
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_common as G

EXAMPLES = [Path('/work/shared/data/example_curent.jpg'), Path('/work/shared/data/example_prior.jpg')]

def example_sources() -> list[Path]:
    "The full-resolution example pair (shared data folder), else the packaged 1024 px pair."
    if all(p.is_file() for p in EXAMPLES): return EXAMPLES
    here = [Path(__file__).resolve().parents[1]/'shared'/'data'/p.name for p in EXAMPLES]
    if all(p.is_file() for p in here): return here
    from libra_nb.core import example_pair
    return list(example_pair())

def make_jpegs(out_dir, n:int=16, size=(2544, 3056), quality:int=95, seed:int=0) -> list[Path]:
    "Write `n` greyscale JPEGs of about `size` (w, h) by re-encoding the example pair with small crops, flips and sizes."
    import numpy as np
    from PIL import Image, ImageOps
    rng = np.random.default_rng(seed)
    srcs = [Image.open(p).convert('L') for p in example_sources()]
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        im = srcs[i % len(srcs)]
        w, h = im.size
        c = rng.uniform(0, 0.04, 4)  # crop up to 4 % per side, so every file differs
        im2 = im.crop((int(c[0]*w), int(c[1]*h), w - int(c[2]*w), h - int(c[3]*h)))
        tw, th = int(size[0] * rng.uniform(0.92, 1.0)), int(size[1] * rng.uniform(0.92, 1.0))
        im2 = im2.resize((tw, th), Image.BICUBIC)
        if rng.random() < 0.5: im2 = ImageOps.mirror(im2)
        p = out_dir/f'cxr_{i:03d}.jpg'; im2.save(p, quality=quality); paths.append(p)
    return paths

def load_draft(path, target:int, grey_resize:bool=False):
    "Decode a JPEG at reduced size (DCT scaling, longest side kept >= `target`); optionally pad + resize to `target` in grey first; 8-bit RGB."
    from PIL import Image
    from libra_nb.imaging import pil_to_rgb, expand_to_square
    with Image.open(path) as im:
        if im.format == 'JPEG':
            w, h = im.size; s = max(w, h) / target  # padding makes the longest side the square's side
            im.draft(im.mode, (max(1, int(w / s)), max(1, int(h / s))))  # picks the largest 1/2^k scale still >= this size
        im.load()
        if grey_resize and im.mode == 'L':  # pad and resize one channel, then replicate it (what RGB conversion does anyway)
            im = expand_to_square(im, 0).resize((target, target), Image.BICUBIC)
        return pil_to_rgb(im)

MODES = ('full size', 'draft', 'draft + grey resize')  # decoding modes compared

def loader_fn(mode:str, target:int):
    "The image loader of a decoding mode."
    from libra_nb.imaging import load_image
    if mode == 'full size': return load_image
    return lambda p: load_draft(p, target, grey_resize=mode != 'draft')

class PairDataset:
    "Sample i -> `(2, 3, S, S)` pixel values of a (current, prior) pair of JPEG files, as the training collator makes them."
    def __init__(self, paths:list, size:int=518, n_samples:int=64, mode:str='full size'):
        self.paths, self.size, self.n, self.mode = [str(p) for p in paths], size, n_samples, mode
        self.proc = None
    def __len__(self): return self.n
    def __getitem__(self, i):
        from libra_nb.imaging import rad_dino_processor, process_images
        if self.proc is None: self.proc = rad_dino_processor(size=self.size)  # per worker
        pair = [self.paths[(2*i) % len(self.paths)], self.paths[(2*i + 1) % len(self.paths)]]
        if self.mode != 'full size': pair = [loader_fn(self.mode, self.size)(p) for p in pair]
        return process_images(pair, self.proc, pad='train')

def _median_rate(fn, n:int, reps:int) -> tuple[float, list]:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return n / statistics.median(ts), ts

def stage_times(paths, size:int, n:int, reps:int) -> list[dict]:
    "Per-image times of the stages in this process: file read + decode, pad + processor; full-size and draft decoding."
    from libra_nb.imaging import expand_to_square, TRAIN_PAD_FILL, rad_dino_processor
    proc = rad_dino_processor(size=size)
    ps = [paths[i % len(paths)] for i in range(n)]
    rows = []
    for mode in MODES:
        dec = loader_fn(mode, size)
        imgs = [dec(p) for p in ps]
        r_dec, _ = _median_rate(lambda: [dec(p) for p in ps], n, reps)
        r_pre, _ = _median_rate(lambda: proc(images=[expand_to_square(im, TRAIN_PAD_FILL) for im in imgs], return_tensors='pt'), n, reps)
        rows.append(dict(decode=mode, decoded_px=f"{imgs[0].size[0]}x{imgs[0].size[1]}",
                         decode_ms=1000 / r_dec, preprocess_ms=1000 / r_pre, images_per_s=1 / (1 / r_dec + 1 / r_pre),
                         samples_per_s=0.5 / (1 / r_dec + 1 / r_pre)))
    return rows

def fidelity(paths, size:int, k:int=4) -> list[dict]:
    "Difference of each fast mode from full-size decoding after preprocessing (normalised pixel units; the range is about 4)."
    import torch
    full = PairDataset(paths, size, k, 'full size')
    ref = [full[i] for i in range(k // 2)]
    rows = []
    for mode in MODES[1:]:
        fast = PairDataset(paths, size, k, mode)
        d = torch.cat([(r - fast[i]).abs().flatten() for i, r in enumerate(ref)])
        rows.append(dict(mode=mode, mean_abs=float(d.mean()), p99_abs=float(d.kthvalue(int(0.99 * d.numel())).values), max_abs=float(d.max())))
    return rows

def loader_rate(paths, size:int, n_samples:int, workers:int, batch:int, mode:str, pin:bool=False) -> dict:
    "Samples/s of whole samples through a DataLoader with `workers` worker processes (start-up excluded)."
    from torch.utils.data import DataLoader
    ds = PairDataset(paths, size, n_samples, mode)
    dl = DataLoader(ds, batch_size=batch, num_workers=workers, pin_memory=pin, persistent_workers=workers > 0,
                    prefetch_factor=4 if workers else None)
    it = iter(dl); next(it)  # start the workers and build their processors
    t0 = time.perf_counter(); n = 0
    for b in it: n += b.shape[0]
    dt = time.perf_counter() - t0
    del it, dl
    return dict(workers=workers, decode=mode, samples=n, seconds=dt, samples_per_s=n / dt)

def train_rate_from_json(path) -> tuple[float, str]:
    "The training samples/s to compare with: the fastest stage's best variant of a gpu_train JSON."
    d = json.loads(Path(path).read_text())
    ok = [v for v in d.get('variants', []) if v.get('status') == 'ok' and 'pipeline' not in v['name']]
    if not ok: raise ValueError(f"{path} holds no successful gpu_train variants")
    best = max(ok, key=lambda v: v['samples_per_s'])
    return best['samples_per_s'], f"{best['name']} (stage {best['stage']}) of {path} on {d.get('machine', '?')}"

def parse(argv=None):
    "Command-line options, with the `--tiny` caps filled in."
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tiny', action='store_true', help='few, smaller files and one worker count (CPU smoke run)')
    ap.add_argument('--size', type=int, default=518, help='processed side in pixels (RAD-DINO: 518)')
    ap.add_argument('--n_files', type=int, default=16, help='distinct JPEG files to synthesise')
    ap.add_argument('--n_samples', type=int, default=96, help='samples (pairs) per DataLoader measurement')
    ap.add_argument('--workers', default='0,1,2,4,8', help='DataLoader worker counts to compare')
    ap.add_argument('--default_workers', type=int, default=4, help='TrainConfig.dataloader_num_workers (the goal is judged here)')
    ap.add_argument('--batch', type=int, default=4, help='DataLoader batch size (samples)')
    ap.add_argument('--reps', type=int, default=3, help='repetitions of the in-process stage timings (median)')
    ap.add_argument('--threads', type=int, default=1, help='torch threads in the main process')
    ap.add_argument('--train_samples_per_s', type=float, default=None, help='training throughput to compare with')
    ap.add_argument('--train_json', default=None, help='or take it from a gpu_train.py JSON (best variant)')
    ap.add_argument('--image_dir', default=None, help='use these JPEGs instead of synthesising (e.g. MIMIC-CXR-JPG files)')
    ap.add_argument('--json', default=None, help='results JSON (default benchmarks/results/input_pipeline[-tiny].json)')
    ap.add_argument('--results_md', default=str(G.RESULTS_MD), help="RESULTS.md to append to ('' to skip)")
    ap.add_argument('--note', default='', help='a note for the results section')
    a = ap.parse_args(argv)
    if a.tiny: a.n_files, a.n_samples, a.reps = min(a.n_files, 6), min(a.n_samples, 12), 1; a.workers = '0,2'; a.default_workers = 2
    return a

def measure(a) -> dict:
    "The files (synthesised in a temporary folder or from --image_dir), the in-process stages, fidelity and the DataLoader rates."
    workers = [int(w) for w in a.workers.split(',') if w != '']
    with tempfile.TemporaryDirectory() as tmp:
        if a.image_dir: paths = sorted(Path(a.image_dir).rglob('*.jpg'))[:a.n_files]
        else: paths = make_jpegs(tmp, a.n_files, size=(1272, 1528) if a.tiny else (2544, 3056))
        from PIL import Image
        sizes = [Image.open(p).size for p in paths]
        mb = sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6
        stages = stage_times(paths, a.size, n=4 if a.tiny else 8, reps=a.reps)
        fid = fidelity(paths, a.size)
        loaders = []
        for mode in MODES:
            for w in workers: loaders.append(loader_rate(paths, a.size, a.n_samples, w, a.batch, mode))
    return dict(files=len(paths), file_px=f"{sizes[0][0]}x{sizes[0][1]}", file_mb=mb, stages=stages, fidelity=fid, loaders=loaders)

def compare_training(a, loaders:list[dict]) -> dict:
    "The training rate compared with (command line or --train_json), each loader's multiple of it, and the goal per decoding mode."
    train, train_src = a.train_samples_per_s, 'command line' if a.train_samples_per_s else None
    if train is None and a.train_json: train, train_src = train_rate_from_json(a.train_json)
    for r in loaders:
        r['x_training'] = r['samples_per_s'] / train if train else None
    dflt = {r['decode']: r for r in loaders if r['workers'] == a.default_workers}
    return dict(train_samples_per_s=train, train_source=train_src, default_workers=a.default_workers,
                goal_met={k: (v['samples_per_s'] >= 1.5 * train if train else None) for k, v in dflt.items()})

def markdown(res:dict, a) -> str:
    "The RESULTS.md section of a result."
    train, train_src = res['train_samples_per_s'], res['train_source']
    label = 'CPU tiny smoke run (small files), not a performance figure' if a.tiny else 'input pipeline on this machine\'s CPU'
    md = [f"### {res['time']} — input_pipeline ({label})", '',
          f"Machine: {res['machine']}; torch {res['versions']['torch']}, Pillow {res['versions'].get('PIL')}, transformers {res['versions']['transformers']}.  ",
          f"Command: `{res['command']}`  ",
          f"Data: {res['files']} greyscale JPEGs of about {res['file_px']} px ({res['file_mb']:.2f} MB each, quality 95, re-encoded from the example pair), "
          f"2 per sample, padded (black) and preprocessed to {a.size} px by `process_images(..., pad='train')` with `rad_dino_processor`."
          + (f"  \nNote: {a.note}" if a.note else ''), '',
          'In-process stages, per image (median of the repetitions, one thread):', '',
          G.md_table(res['stages'], [('decode', 'decode', ''), ('decoded px', 'decoded_px', ''), ('decode ms', 'decode_ms', '.1f'),
                                     ('pad + processor ms', 'preprocess_ms', '.1f'), ('images/s', 'images_per_s', '.1f'),
                                     ('samples/s', 'samples_per_s', '.2f')]), '',
          'Difference from full-size decoding after preprocessing (normalised units; the pixel range is about 4):', '',
          G.md_table(res['fidelity'], [('mode', 'mode', ''), ('mean abs diff', 'mean_abs', '.4f'), ('99th pct', 'p99_abs', '.4f'), ('max', 'max_abs', '.3f')]), '',
          f"DataLoader (batch {a.batch}, {a.n_samples} samples, start-up excluded):" +
          (f" training throughput compared with: {train:.2f} samples/s ({train_src})." if train else ' no training throughput given.'), '',
          G.md_table(res['loaders'], [('workers', 'workers', 'd'), ('decode', 'decode', ''), ('samples/s', 'samples_per_s', '.2f'),
                                      ('x training', 'x_training', '.2f')])]
    if train: md += ['', f"Goal (>= 1.5x training with {a.default_workers} workers): " +
                     ', '.join(f"{k}: {'met' if v else 'NOT met'}" for k, v in res['goal_met'].items()) + '.']
    return '\n'.join(md)

def main(argv=None):
    a = parse(argv)
    import torch
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    m = measure(a)
    cmp = compare_training(a, m['loaders'])
    res = dict(benchmark='input_pipeline', tiny=a.tiny, time=G.now_utc(), machine=G.machine('cpu'), versions=G.versions(),
               command=G.command_line(), note=a.note, size=a.size, files=m['files'], file_px=m['file_px'],
               file_mb=m['file_mb'], cpu_count=os.cpu_count(), stages=m['stages'], fidelity=m['fidelity'], loaders=m['loaders'],
               train_samples_per_s=cmp['train_samples_per_s'], train_source=cmp['train_source'], default_workers=a.default_workers,
               goal_met=cmp['goal_met'], wall_s=time.perf_counter() - t_start)
    G.finish(res, a.json or G.HERE/'results'/f"input_pipeline{'-tiny' if a.tiny else ''}.json", a.results_md, markdown(res, a))
    return res

if __name__ == '__main__': main()
