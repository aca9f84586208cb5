"""Execute notebooks and save their outputs, reproducibly, so the book and the docs site show results.

Each notebook runs in a fresh process, cell by cell (the cells `nbdev_test` runs: `#| eval: false` and the flags of
settings.ini's `tst_flags` are skipped), with fixed seeds, progress bars off, figures as JPEG.
Saved outputs are scrubbed of machine paths and memory addresses, stderr streams (warnings) are dropped, large PNGs become JPEG,
and the notebook is cleaned the way `nbdev_clean` does. A notebook whose cell fails is left untouched.

    python tools/run_notebooks.py                       # every notebook in nbs/
    python tools/run_notebooks.py nbs/02_pairing.ipynb  # some of them

Run it after changing a notebook's examples, before committing (CI's `tools/check_book.py` fails when fewer than
90 % of the cells that display a value have a saved output).
"""
import argparse, base64, io, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
SKIP_FLAGS = {'notest', 'slow', 'cuda'}
PRELUDE = """
import os, random
random.seed(0)
import numpy as np; np.random.seed(0)
try:
    import torch; torch.manual_seed(0)
except ImportError: pass
from matplotlib_inline.backend_inline import set_matplotlib_formats
set_matplotlib_formats('jpeg')
%config InlineBackend.print_figure_kwargs = {'dpi': 100, 'bbox_inches': 'tight'}
import pandas as pd; pd.set_option('display.width', 120); pd.set_option('display.max_columns', 20)
"""
ENV = dict(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TQDM_DISABLE='1', PYTHONHASHSEED='0', HF_HUB_DISABLE_PROGRESS_BARS='1',
           TOKENIZERS_PARALLELISM='false', MPLBACKEND='module://matplotlib_inline.backend_inline')

def _scrubbers() -> list[tuple[re.Pattern, str]]:
    "Patterns of machine-specific text in outputs and what replaces them."
    home, root = str(Path.home()), str(ROOT)
    return [(re.compile(re.escape(root) + r'/?'), ''),
            (re.compile(r'(/private)?/(tmp|var/folders/[^\s\'"]+?/T)/[^\s\'"/]+/?'), '…/'),
            (re.compile(re.escape(home) + r'/?'), '~/'),
            (re.compile(r'\bat 0x[0-9a-fA-F]{6,}'), 'at 0x…')]

def scrub(text:str, subs=None) -> str:
    "`text` without machine paths and memory addresses."
    for pat, rep in subs or _scrubbers(): text = pat.sub(rep, text)
    return text

def _as_jpeg(b64:str, min_bytes=40_000) -> str|None:
    "A large base64 PNG re-encoded as JPEG (None when it is small or has transparency)."
    raw = base64.b64decode(b64)
    if len(raw) < min_bytes: return None
    from PIL import Image
    im = Image.open(io.BytesIO(raw))
    if im.mode in ('RGBA', 'LA', 'P'): im = im.convert('RGB')
    buf = io.BytesIO(); im.save(buf, 'JPEG', quality=85)
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < len(raw) else None

def tidy_output(o:dict, subs) -> dict|None:
    "One output made reproducible (None drops it: stderr, which holds warnings and log lines)."
    if o.get('output_type') == 'stream':
        if o.get('name') == 'stderr': return None
        o['text'] = scrub(''.join(o['text']), subs).splitlines(True)
        return o
    data = o.get('data', {})
    for k in list(data):
        if k.startswith('text/'):
            v = data[k]; data[k] = scrub(''.join(v) if isinstance(v, list) else v, subs).splitlines(True)
    if 'image/png' in data and 'image/jpeg' not in data and (j := _as_jpeg(''.join(data['image/png']))):
        data['image/jpeg'] = j; del data['image/png']; o.get('metadata', {}).pop('image/png', None)
    return o

def skipped(cell) -> bool:
    "Cells `nbdev_test` does not run: markdown, `nbdev_export()`, `#| eval: false`, and the skip flags."
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
    from nbdev.process import extract_directives
    from fastcore.basics import AttrDict
    d = extract_directives(AttrDict(source=cell.source), remove=False)
    return d.get('eval:', [''])[0].lower() == 'false' or bool(SKIP_FLAGS & set(d))

def run_one(path:Path) -> int:
    "Execute one notebook in this process and save it with tidy outputs; 1 if a cell failed."
    from execnb.shell import CaptureShell
    from execnb.nbio import write_nb
    from execnb.nbio import read_nb
    nb = read_nb(path)
    sh, subs = CaptureShell(path, mpl_format='jpeg'), _scrubbers()
    os.chdir(path.parent)
    sh.run(PRELUDE)
    if sh.exc: print(f"{path.name}: the prelude failed: {sh.exc!r}"); return 1
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'code': cell.outputs = []
        if skipped(cell): continue
        sh._cell_idx = i
        outs = sh.run(cell.source)
        if sh.exc:
            print(f"{path.name}: cell {i} failed, notebook left as it was:\n{sh.prettytb(fname=path)}"); return 1
        cell.outputs = [t for o in outs if (t := tidy_output(dict(o), subs)) is not None]
        cell.execution_count = None
    for c in nb.cells: c.pop('idx_', None)
    write_nb(nb, path)
    subprocess.run(['nbdev_clean', '--fname', str(path)], check=False, capture_output=True)
    return 0

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to run (default: every notebook in nbs/)')
    ap.add_argument('--one', help=argparse.SUPPRESS)  # the child process's notebook
    a = ap.parse_args()
    if a.one: sys.exit(run_one(Path(a.one).resolve()))
    paths = [Path(p).resolve() for p in a.notebooks] or sorted(NBS.glob('*.ipynb'))
    failed = []
    for p in paths:
        t = time.time()
        r = subprocess.run([sys.executable, __file__, '--one', str(p)], env={**os.environ, **ENV})
        kb = p.stat().st_size // 1024
        print(f"{'FAILED' if r.returncode else 'ok':6} {p.name} ({time.time()-t:.0f} s, {kb} kB)", flush=True)
        if r.returncode: failed.append(p.name)
    if failed: print("failed: " + ", ".join(failed)); sys.exit(1)

if __name__ == '__main__': main()
