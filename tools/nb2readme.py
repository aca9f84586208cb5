"""Render `nbs/index.ipynb` to `README.md` without quarto.

nbdev 2's `nbdev_readme` needs the quarto binary, which cannot be installed on the CI machines.
This writes the same content (markdown cells as they are, visible code cells as fenced Python,
text outputs when the notebook holds them; figures are left out, and links to `images/` point to `nbs/images/`).
Where quarto exists, `nbdev_readme` is the canonical path.
Usage: `python tools/nb2readme.py [--check]` (`--check` exits 1 when README.md is out of date).
"""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path=root/'nbs'/'index.ipynb'):
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']
        lines = src.split('\n')
        directives = [l for l in lines if re.match(r'^#\|', l)]
        if any(re.match(r'^#\|\s*(hide|include:\s*false)', d) for d in directives): continue
        body = '\n'.join(l for l in lines if not re.match(r'^#\|', l)).strip('\n')
        # pictures live in nbs/images: relative to the notebook there, relative to the repository root here
        if cell['cell_type'] == 'markdown': parts.append(body.replace('](images/', '](nbs/images/'))
        elif body:
            parts.append(f'```python\n{body}\n```')
            for out in cell.get('outputs', []):
                if any(k.startswith('image/') for k in out.get('data', {})): continue  # a figure: its text is only `<Figure ...>`
                text = out.get('text') or out.get('data', {}).get('text/plain')
                if text: parts.append('    ' + ''.join(text).rstrip('\n').replace('\n', '\n    '))
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md does not match nbs/index.ipynb: run `python tools/nb2readme.py` and commit it.')
    else: readme.write_text(text, encoding='utf-8')
