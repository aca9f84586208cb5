"""Render the docs pages without Quarto and check that each carries its figures (CI runs it).

nbdev processes the notebooks for the docs (`_proc/`, as `nbdev_docs` does before calling Quarto); each processed
notebook is rendered to HTML with nbconvert (`_proc/_html/`). A page fails when it has fewer `<img>` than the saved
figures its processed notebook holds, when a notebook that draws renders no figure at all, or when a markdown image
link does not resolve from the notebook's folder (Quarto resolves links relative to `nbs/`). A user with Quarto gets
the same pages from `nbdev_docs`.

    python tools/render_book.py                     # process, render, check
    python tools/render_book.py --screenshot 02_pairing   # also a PNG of that page (headless Chromium) to look at
"""
import argparse, json, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, PROC = ROOT/'nbs', ROOT/'_proc'
sys.path.insert(0, str(ROOT/'tools'))
from check_book import DRAWS, has_figure, is_shown  # noqa: E402

IMG_LINK = re.compile(r'!\[[^\]]*\]\(([^)\s]+)')

def process() -> None:
    "nbdev's docs processing of every notebook into `_proc/`."
    from nbdev.serve import proc_nbs
    proc_nbs(n_workers=2, force=True)

def render(nb:Path, out:Path) -> str:
    "`nb` as a standalone HTML page (figures embedded), written to `out`."
    from nbconvert import HTMLExporter
    html, _ = HTMLExporter(embed_images=True).from_filename(str(nb))
    out.write_text(html)
    return html

def page_problems(src:Path, proc:Path, html:str) -> list[str]:
    "What is missing from one rendered page."
    cells = json.loads(proc.read_text())['cells']
    figs = sum(has_figure(o) for c in cells for o in c.get('outputs', []))
    imgs, probs = len(re.findall(r'<img\b', html)), []
    if imgs < figs: probs.append(f"{proc.name}: the page shows {imgs} images, the notebook holds {figs} figures")
    scells = json.loads(src.read_text())['cells']
    if any(c['cell_type'] == 'code' and is_shown(''.join(c['source'])) and DRAWS.search(''.join(c['source'])) for c in scells) and not imgs:
        probs.append(f"{proc.name}: the notebook draws but its page shows no image")
    for c in scells:
        for link in IMG_LINK.findall(''.join(c['source'])) if c['cell_type'] == 'markdown' else []:
            if not re.match(r'^(https?:|data:)', link) and not (src.parent/link).exists():
                probs.append(f"nbs/{src.name}: image link {link!r} does not resolve from nbs/")
    return probs

def screenshot(html:Path, png:Path, width=1100, height=4000) -> None:
    "A PNG of a rendered page (headless Chromium, no network)."
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if not exe: sys.exit("render_book: chromium is not installed (apt-get install chromium)")
    subprocess.run([exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
                    '--disable-component-update', '--disable-sync', '--hide-scrollbars', f'--window-size={width},{height}',
                    f'--screenshot={png}', html.as_uri()], check=True, capture_output=True, timeout=120)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--screenshot', nargs='*', default=[], help='notebook names (no .ipynb) to screenshot into _proc/_html/')
    ap.add_argument('--no_process', action='store_true', help='reuse _proc/ as it is')
    a = ap.parse_args()
    if not a.no_process: process()
    out = PROC/'_html'; out.mkdir(parents=True, exist_ok=True)
    problems, pages = [], 0
    for src in sorted(NBS.glob('*.ipynb')):
        proc = PROC/src.name
        if not proc.exists(): problems.append(f"{src.name}: not processed into _proc/"); continue
        html = render(proc, out/f'{src.stem}.html'); pages += 1
        problems += page_problems(src, proc, html)
    for name in a.screenshot:
        screenshot(out/f'{name}.html', out/f'{name}.png'); print(f"screenshot: _proc/_html/{name}.png")
    for p in problems: print(p)
    print(f"rendered {pages} pages: " + (f"{len(problems)} problem(s)" if problems else "every page carries its figures"))
    sys.exit(1 if problems else 0)

if __name__ == '__main__': main()
