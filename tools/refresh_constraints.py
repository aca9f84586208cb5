"""Write `constraints.txt`, the exact versions CI tested, from a virtual environment whose tests passed.

    python tools/refresh_constraints.py                              # from .venv (the README's install)
    python tools/refresh_constraints.py --venv .venv-latest          # adopt what CI's newest-versions run tested
    python tools/refresh_constraints.py --venv .venv-latest --diff   # only list what would change

The README's commands install with `pip install -c constraints.txt ...`, so a fresh machine gets the tested set.
Local version labels (`torch==2.13.0+cpu`) are dropped: `torch==2.13.0` matches the CPU and the CUDA builds.
"""
import argparse, platform, re, subprocess, sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def frozen(venv:Path) -> dict[str, str]:
    "Package name (lower case) -> `name==version` line of everything installed in `venv` but libra_nb itself."
    py = venv/'bin'/'python'
    if not py.exists(): sys.exit(f"refresh_constraints: {py} does not exist; pass --venv <a virtual environment>.")
    out = subprocess.run([str(py), '-m', 'pip', 'freeze', '--exclude-editable'], capture_output=True, text=True, check=True).stdout
    pins = {}
    for line in out.splitlines():
        m = re.match(r'^([A-Za-z0-9_.\-]+)==([^\s;+]+)', line)
        if m and m.group(1).lower().replace('_', '-') != 'libra-nb': pins[m.group(1).lower()] = f"{m.group(1)}=={m.group(2)}"
    return pins

def read_pins(path:Path) -> dict[str, str]:
    "The `name==version` lines of an existing constraints file."
    if not path.exists(): return {}
    return {l.split('==')[0].lower(): l.strip() for l in path.read_text().splitlines() if '==' in l and not l.startswith('#')}

def changes(old:dict, new:dict) -> list[str]:
    "Lines saying what differs between two pin sets."
    out = [f"{new[k]} (was {old[k].split('==')[1]})" for k in sorted(new) if k in old and old[k] != new[k]]
    out += [f"{new[k]} (new)" for k in sorted(set(new) - set(old))] + [f"{old[k]} (gone)" for k in sorted(set(old) - set(new))]
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--venv', default=str(ROOT/'.venv'), help='virtual environment whose tests passed')
    ap.add_argument('--out', default=str(ROOT/'constraints.txt'), help='constraints file to write')
    ap.add_argument('--diff', action='store_true', help='only print what would change')
    a = ap.parse_args()
    out, new = Path(a.out), frozen(Path(a.venv))
    diff = changes(read_pins(out), new)
    print('\n'.join(diff) if diff else f"{out.name}: no change")
    if a.diff: return
    head = (f"# Versions tested by .ci/run (Python {platform.python_version()}, CPU torch), written {date.today()} by\n"
            f"# `python tools/refresh_constraints.py`. Install with `pip install -c constraints.txt ...` (see README.md).\n")
    out.write_text(head + '\n'.join(new[k] for k in sorted(new)) + '\n')

if __name__ == '__main__': main()
