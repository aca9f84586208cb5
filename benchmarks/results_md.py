"Appending a benchmark's figures to its own `## name` section of benchmarks/RESULTS.md (shared by every script here)."
from pathlib import Path
import fcntl

RESULTS_MD = Path(__file__).resolve().parent/'RESULTS.md'

def append_results(section:str, heading:str, path:Path=RESULTS_MD) -> Path:
    "Append markdown `section` at the end of `heading`'s part of RESULTS.md (file and heading created if missing)."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a+') as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # several benchmarks may finish at once
        f.seek(0); text = f.read()
        lines = text.split('\n') if text else ['# Benchmark results', '']
        try: start = lines.index(heading)
        except ValueError:
            while lines and lines[-1] == '': lines.pop()
            lines += ['', heading, '']; start = len(lines) - 2
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith('## ')), len(lines))
        block = lines[start:end]
        while block and block[-1] == '': block.pop()
        block += ['', section.strip(), '']
        new = '\n'.join(lines[:start] + block + ([''] if end < len(lines) else []) + lines[end:])
        f.seek(0); f.truncate(); f.write(new.rstrip('\n') + '\n')
    return path
