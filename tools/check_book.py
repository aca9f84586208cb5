"""Checks that the notebooks read as a book (CI runs it; exit status 1 on any failure):
- at least 90 % of display cells (a shown code cell whose last statement is an expression other than a `test_*` call)
  have a saved output;
- a notebook that draws (`plt.`, `plot_…(`, `show_…(`, `render_…(` in a shown cell) has at least one saved figure;
- export cells stay near nbdev's size: median at most 12 lines, at most 6 % over 30 lines;
- no saved output holds a machine path (a home or temporary folder), a memory address or a user name;
- no prose or code points at a note the reader cannot open ("spec §c", "quirk 6", "issue 17");
- no notebook is over 1 MB.

    python tools/check_book.py            # the checks
    python tools/check_book.py --report   # also a table per notebook
"""
import ast, json, re, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
MIN_SHOWN, MAX_MEDIAN, MAX_LONG_SHARE, LONG, MAX_BYTES = 0.90, 12, 0.06, 30, 1_000_000
TESTS = re.compile(r'^(test_\w*|assert\w*)$')
DRAWS = re.compile(r'\bplt\.|\b(plot|show|render)_\w*\(')
MACHINE = re.compile(r'(/home/\w|/root/|/tmp/|/var/folders/|/private/var/|C:\\\\Users|\bat 0x[0-9a-f]{6,}|/work/)')
NOTE_REF = re.compile(r'(spec\s*§|§\s*[a-z0-9]\b|\bquirk\s*#?\d|\bissue\s*#?\d+\b|\bfinding\s*#?\d)', re.I)

def directives(src:str) -> dict[str, str]:
    "The `#| key: value` lines of a cell."
    out = {}
    for l in src.splitlines():
        if not l.startswith('#|'): continue
        k, _, v = l[2:].strip().partition(':')
        for w in (k.split() if not v else [k]): out[w.strip()] = v.strip()
    return out

def is_shown(src:str) -> bool:
    "A code cell whose output the docs show: not exported, hidden, skipped or unevaluated."
    d = directives(src)
    if {'export', 'exports', 'exporti', 'hide', 'default_exp'} & set(d): return False
    return d.get('eval', 'true').lower() != 'false' and not ({'notest', 'cuda'} & set(d))

def is_display(src:str) -> bool:
    "A shown cell that ends in a value to display (its last statement is an expression, not a `test_*` call)."
    if not is_shown(src): return False
    code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
    try: body = ast.parse(code).body
    except SyntaxError: return False
    if not body or not isinstance(last := body[-1], ast.Expr): return False
    v = last.value
    if isinstance(v, ast.Constant): return False
    f = v.func if isinstance(v, ast.Call) else None
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''
    return not TESTS.match(name)

def export_sizes(cells) -> list[int]:
    "Line counts (directives and blank lines left out) of the export cells."
    return [sum(1 for l in ''.join(c['source']).splitlines() if l.strip() and not l.startswith('#|'))
            for c in cells if c['cell_type'] == 'code' and {'export', 'exports', 'exporti'} & set(directives(''.join(c['source'])))]

def output_text(o:dict) -> str:
    "The text of one saved output (figures left out)."
    if 'text' in o: return ''.join(o['text'])
    d = o.get('data', {})
    return ''.join(''.join(d[k]) if isinstance(d[k], list) else str(d[k]) for k in d if k.startswith('text/'))

def has_figure(o:dict) -> bool: return any(k.startswith('image/') for k in o.get('data', {}))

def notebook_stats(nb:Path) -> dict:
    "Counts and problems of one notebook."
    cells, probs = json.loads(nb.read_text())['cells'], []
    code = [c for c in cells if c['cell_type'] == 'code']
    disp = [c for c in code if is_display(''.join(c['source']))]
    shown = [c for c in disp if c.get('outputs')]
    draws = any(DRAWS.search(''.join(c['source'])) for c in code if is_shown(''.join(c['source'])))
    figs = sum(has_figure(o) for c in code for o in c.get('outputs', []))
    for i, c in enumerate(cells):
        src = ''.join(c['source'])
        if m := NOTE_REF.search(src): probs.append(f"nbs/{nb.name} cell {i}: points at a note the reader cannot open: {m.group(0)!r}")
        for o in c.get('outputs', []):
            if m := MACHINE.search(output_text(o)): probs.append(f"nbs/{nb.name} cell {i}: output holds a machine path or address: {m.group(0)!r}")
    if draws and not figs: probs.append(f"nbs/{nb.name}: draws but has no saved figure")
    if (size := nb.stat().st_size) > MAX_BYTES: probs.append(f"nbs/{nb.name}: {size/1e6:.2f} MB (max {MAX_BYTES/1e6:.0f} MB)")
    return dict(nb=nb.name, display=len(disp), shown=len(shown), figs=figs, exports=export_sizes(cells), kb=size//1024, problems=probs)

def book_problems(stats:list[dict]) -> list[str]:
    "Problems across the book."
    probs = [p for s in stats for p in s['problems']]
    disp, shown = sum(s['display'] for s in stats), sum(s['shown'] for s in stats)
    if disp and shown/disp < MIN_SHOWN: probs.append(f"{shown} of {disp} display cells have a saved output ({shown/disp:.0%}; min {MIN_SHOWN:.0%}): run tools/run_notebooks.py")
    sizes = [n for s in stats for n in s['exports']]
    med, share = statistics.median(sizes), sum(n > LONG for n in sizes)/len(sizes)
    if med > MAX_MEDIAN: probs.append(f"export cells: median {med} lines (max {MAX_MEDIAN})")
    if share > MAX_LONG_SHARE: probs.append(f"export cells: {share:.1%} over {LONG} lines (max {MAX_LONG_SHARE:.0%})")
    return probs

if __name__ == '__main__':
    stats = [notebook_stats(nb) for nb in sorted(NBS.glob('*.ipynb'))]
    if '--report' in sys.argv:
        print(f"{'notebook':28} {'shown':>9} {'figs':>4} {'exports':>7} {'median':>6} {'>30':>4} {'kB':>5}")
        for s in stats:
            e = s['exports']
            print(f"{s['nb']:28} {s['shown']:>4}/{s['display']:<4} {s['figs']:>4} {len(e):>7} {statistics.median(e) if e else 0:>6} {sum(n > LONG for n in e):>4} {s['kb']:>5}")
        sizes = [n for s in stats for n in s['exports']]
        print(f"all: {sum(s['shown'] for s in stats)}/{sum(s['display'] for s in stats)} display cells shown; "
              f"{len(sizes)} export cells, median {statistics.median(sizes)}, {sum(n > LONG for n in sizes)/len(sizes):.1%} over {LONG}")
    problems = book_problems(stats)
    for p in problems: print(p)
    print(f"book: {len(problems)} problem(s)" if problems else "book: ok")
    sys.exit(1 if problems else 0)
