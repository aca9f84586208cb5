"""Checks the package's layout rules (CI runs it; exit status 1 on any failure):
- no module of libra_nb/ imports a module that a later notebook exports (notebook order = the order nbdev lists them),
  and no notebook's code imports a module of a later notebook;
- no import circle between libra_nb modules, and no libra_nb import inside a function (imports go at the top);
- no module over 450 lines (nbdev's `# %%` cell markers not counted), no function (in libra_nb/, benchmarks/, tools/) over 60 lines.

    python tools/check_layout.py
"""
import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG, NBS = ROOT/'libra_nb', ROOT/'nbs'
MAX_MODULE, MAX_FUNCTION = 450, 60

def notebook_order() -> dict[str, int]:
    "Notebook file name -> position (nbdev's order: sorted file names)."
    return {p.name: i for i, p in enumerate(sorted(NBS.glob('*.ipynb')))}

def module_notebooks() -> dict[str, str]:
    "Module name -> the notebook that exports it (from the header nbdev writes)."
    out = {}
    for f in sorted(PKG.glob('*.py')):
        m = re.search(r'File to edit: \.\./nbs/(\S+\.ipynb)', f.read_text().split('\n', 3)[0] + f.read_text()[:400])
        if m: out[f.stem] = m.group(1)
    return out

def imported_modules(tree:ast.AST, modules:set[str]) -> list[tuple[str, int, bool]]:
    "(libra_nb module, line, inside a function) for each import of a libra_nb module in `tree`."
    found, funcs = [], [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1 and not mod: names = [a.name for a in node.names]
            elif node.level == 1: names = [mod.split('.')[0]]
            elif mod == 'libra_nb': names = [a.name for a in node.names]
            elif mod.startswith('libra_nb.'): names = [mod.split('.')[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split('.')[1] for a in node.names if a.name.startswith('libra_nb.')]
        found += [(n, node.lineno, id(node) in inner) for n in names if n in modules]
    return found

def cells_source(nb:Path) -> str:
    "The code cells of a notebook as one parseable source (IPython magics and shell lines dropped)."
    cells = json.loads(nb.read_text())['cells']
    code = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
    return '\n'.join(l for c in code for l in c.splitlines() if not l.lstrip().startswith(('%', '!')))

def find_cycle(graph:dict[str, set[str]]) -> list[str]|None:
    "One import circle of `graph`, or None."
    state, stack = {}, []
    def visit(n):
        state[n] = 1; stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1: return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)): return c
        state[n] = 2; stack.pop()
    for n in sorted(graph):
        if n not in state and (c := visit(n)): return c

def long_functions(files) -> list[str]:
    "Functions longer than MAX_FUNCTION lines."
    out = []
    for f in files:
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and (k := n.end_lineno - n.lineno + 1) > MAX_FUNCTION:
                out.append(f"{f.relative_to(ROOT)}:{n.lineno}: function {n.name} is {k} lines (max {MAX_FUNCTION})")
    return out

def module_lines(f:Path) -> int:
    "Lines of a module, not counting the `# %% notebook cell` markers nbdev writes before each export cell."
    return sum(1 for l in f.read_text().splitlines() if not l.startswith('# %% '))

def layout_problems() -> list[str]:
    order, mod_nb = notebook_order(), module_notebooks()
    modules, problems, graph = set(mod_nb), [], {}
    for mod, nb in mod_nb.items():
        f = PKG/f'{mod}.py'
        if (n := module_lines(f)) > MAX_MODULE: problems.append(f"libra_nb/{mod}.py is {n} lines (max {MAX_MODULE})")
        for dep, line, inside in imported_modules(ast.parse(f.read_text()), modules):
            if dep == mod: continue
            graph.setdefault(mod, set()).add(dep)
            if order.get(mod_nb[dep], -1) > order.get(nb, -1):
                problems.append(f"libra_nb/{mod}.py:{line}: imports {dep} ({mod_nb[dep]}), a later notebook than {nb}")
            if inside: problems.append(f"libra_nb/{mod}.py:{line}: imports {dep} inside a function (imports go at the top)")
    if cycle := find_cycle(graph): problems.append("import circle: " + " -> ".join(cycle))
    for nb in sorted(NBS.glob('*.ipynb')):
        try: tree = ast.parse(cells_source(nb))
        except SyntaxError as e: problems.append(f"nbs/{nb.name}: code cells do not parse ({e})"); continue
        for dep, _, _ in imported_modules(tree, modules):
            if order.get(mod_nb[dep], -1) > order[nb.name]:
                problems.append(f"nbs/{nb.name}: imports libra_nb.{dep}, exported by the later notebook {mod_nb[dep]}")
    files = [f for d in ('libra_nb', 'benchmarks', 'tools') for f in sorted((ROOT/d).glob('*.py')) if f.name != '_modidx.py']
    return problems + long_functions(files)

if __name__ == '__main__':
    problems = layout_problems()
    for p in problems: print(p)
    print(f"layout: {len(problems)} problem(s)" if problems else "layout: ok")
    sys.exit(1 if problems else 0)
