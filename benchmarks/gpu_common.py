"""Shared pieces of the GPU benchmarks (`gpu_train.py`, `gpu_generate.py`, `input_pipeline.py`).

A Libra-7B-shaped model with random weights built with `libra_nb.modeling` (RAD-DINO's Dinov2 ViT-B/14 at 518 px,
TAC 768 -> 4096 with 32 heads over 12 layers, Llama-2-7B / Meditron-7B shapes), synthetic training batches, the FLOP
formulas used for MFU, machine/version strings, and appending a section to `benchmarks/RESULTS.md` under `## gpu`.

    python benchmarks/gpu_common.py append results.json   # append a JSON's markdown section (e.g. fetched from a GPU run)
"""
from __future__ import annotations
import contextlib, json, os, platform, shlex, sys, time
from datetime import datetime, timezone
from pathlib import Path
from results_md import append_results as _append_results, RESULTS_MD

HERE = Path(__file__).resolve().parent
HEADING = '## gpu'
H100_BF16_PEAK_TFLOPS = 989.0  # H100 SXM, bf16 dense tensor-core peak (H200 has the same compute peak)

# ---------------------------------------------------------------------------------------------------------------- shapes
SHAPES = {
    # RAD-DINO (Dinov2 ViT-B/14, 518 px -> 37x37 = 1369 patches) + TAC + Llama-2-7B / Meditron-7B
    'full': dict(image_size=518, patch=14, v_hidden=768, v_layers=12, v_heads=12, v_mlp=3072,
                 hidden=4096, layers=32, heads=32, kv_heads=32, mlp=11008, vocab=32000, max_pos=4096,
                 text_min=100, text_max=400),
    # same structure, tiny widths: runs end to end on a CPU in seconds (N = 4x4 = 16 image tokens)
    'tiny': dict(image_size=56, patch=14, v_hidden=32, v_layers=2, v_heads=2, v_mlp=128,
                 hidden=64, layers=2, heads=4, kv_heads=4, mlp=128, vocab=512, max_pos=1024,
                 text_min=10, text_max=40),
}

def n_image_tokens(s:dict) -> int: return (s['image_size'] // s['patch']) ** 2

def libra_config(shape:dict):
    "A `LibraConfig` with `shape`'s Dinov2 encoder, TAC and Llama LM."
    from transformers import Dinov2Config, LlamaConfig
    from libra_nb.modeling import LibraConfig
    v = Dinov2Config(hidden_size=shape['v_hidden'], num_hidden_layers=shape['v_layers'], num_attention_heads=shape['v_heads'],
                     mlp_ratio=shape['v_mlp'] // shape['v_hidden'], image_size=shape['image_size'], patch_size=shape['patch'])  # Dinov2: MLP = mlp_ratio * width
    t = LlamaConfig(vocab_size=shape['vocab'], hidden_size=shape['hidden'], intermediate_size=shape['mlp'],
                    num_hidden_layers=shape['layers'], num_attention_heads=shape['heads'], num_key_value_heads=shape['kv_heads'],
                    max_position_embeddings=shape['max_pos'], rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LibraConfig(vision_config=v, text_config=t, projector_type='TAC', mm_vision_select_layer='all',
                       mm_vision_tower='microsoft/rad-dino (shape only, random weights)')

def build_model(shape:dict, device:str='cpu', dtype=None, attn:str='sdpa', seed:int=0):
    "Random-weight Libra model built directly on `device` (no CPU copy of the 7B weights), in `dtype`, eval mode."
    import torch
    from libra_nb.modeling import LibraForConditionalGeneration
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.device(device):
        model = LibraForConditionalGeneration._from_config(libra_config(shape), attn_implementation=attn, dtype=dtype)
    model.eval()
    if device.startswith('cuda'): torch.cuda.synchronize()
    return model, time.perf_counter() - t0

def set_attention(model, attn:str):
    "Switch the attention implementation of the LM and the vision encoder (where the encoder supports it)."
    model.language_model.set_attn_implementation(attn)
    try: model.vision_tower.vision_tower.set_attn_implementation(attn)
    except (ValueError, ImportError): model.vision_tower.vision_tower.set_attn_implementation('sdpa')

def flash_attn_available() -> bool:
    try:
        import flash_attn  # noqa: F401
        return True
    except Exception: return False

# ------------------------------------------------------------------------------------------------------------------ FLOPs
# Model FLOPs of one sample, counted as multiply-adds x 2, real (non-pad) positions only:
#   T  = N + L - 1 LM positions (N image tokens replace the one `<image>` placeholder of the L text tokens);
#   LM linear forward  = 2 * P_blocks * T,  P_blocks = layers * (2*h*h + 2*h*kv + 3*h*f)   (q,o; k,v; gate,up,down);
#   LM attention fwd   = layers * 2 * h * T^2    (QK^T and AV, causal: half of the 4*h*T^2 of full attention);
#   LM head forward    = 2 * h * V * A        (A = labelled positions: logits are only *needed* where the loss is);
#   vision forward     = 2 images * [2*(3*p^2*D)*N + layers_v * (2*(4*D^2 + 2*D*F)*(N+1) + 4*D*(N+1)^2)];
#   TAC forward        = counted once with torch.utils.flop_counter on the meta device (matmuls, convs, attention);
#   LoRA forward       = layers * sum over the 7 projections of 2*r*(in+out) * T.
# Needed backward work, per stage (activation-recomputation of gradient checkpointing is NOT counted):
#   stage 1 (TAC trains, LM frozen, gradients flow through the LM to the image embeddings): input gradients of every
#     LM linear (= 1x its forward) and of attention (= 2x its forward), LM head input gradient (1x), TAC weight +
#     input gradients (2x its forward), no weight gradients of the LM, nothing for the frozen vision tower;
#     => vision + 3*TAC + 2*LM_linear + 3*LM_attention + 2*LM_head.
#   stage 2 (LoRA trains, TAC and LM frozen): LM input gradients as above, LoRA weight + input gradients (2x its
#     forward), TAC and vision forward only => vision + TAC + 2*LM_linear + 3*LM_attention + 2*LM_head + 3*LoRA.
LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')

def lm_block_params(s:dict) -> int:
    hd = s['hidden'] // s['heads']; kv = s['kv_heads'] * hd; h, f = s['hidden'], s['mlp']
    return s['layers'] * (2*h*h + 2*h*kv + 3*h*f)

def lora_params_per_token(s:dict, r:int) -> int:
    "Parameters of the LoRA A and B matrices of one layer stack (= per-token multiply-adds of the adapters)."
    hd = s['hidden'] // s['heads']; kv = s['kv_heads'] * hd; h, f = s['hidden'], s['mlp']
    io = dict(q_proj=(h, h), k_proj=(h, kv), v_proj=(h, kv), o_proj=(h, h), gate_proj=(h, f), up_proj=(h, f), down_proj=(f, h))
    return s['layers'] * sum(r * (i + o) for i, o in io.values())

def vision_flops(s:dict) -> float:
    "Forward FLOPs of the vision tower for one sample (two images)."
    N, D, F, p = n_image_tokens(s), s['v_hidden'], s['v_mlp'], s['patch']
    per_img = 2*(3*p*p*D)*N + s['v_layers'] * (2*(4*D*D + 2*D*F)*(N+1) + 4*D*(N+1)**2)
    return 2.0 * per_img

_TAC_CACHE = {}
def tac_flops(s:dict) -> float:
    "Forward FLOPs of the TAC for one sample, counted with FlopCounterMode on the meta device (no memory, no compute)."
    key = (s['v_hidden'], s['hidden'], s['heads'], s['v_layers'], n_image_tokens(s))
    if key not in _TAC_CACHE:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
        from libra_nb.tac import TAC
        with torch.device('meta'):
            tac = TAC(s['v_hidden'], s['hidden'], s['heads'], s['v_layers'])
            x = torch.empty(1, s['v_layers'], n_image_tokens(s), s['v_hidden'])
            with FlopCounterMode(display=False) as fc: tac(x, x.clone())
        _TAC_CACHE[key] = float(fc.get_total_flops())
    return _TAC_CACHE[key]

def sample_flops(s:dict, text_len:int, n_labels:int, stage:int, lora_r:int=128) -> dict:
    "Model FLOPs of one training sample by part and in total (see the formula above)."
    T = n_image_tokens(s) + text_len - 1
    lin = 2.0 * lm_block_params(s) * T
    att = s['layers'] * 2.0 * s['hidden'] * T * T
    head = 2.0 * s['hidden'] * s['vocab'] * n_labels
    vis, tac = vision_flops(s), tac_flops(s)
    if stage == 1: parts = dict(vision=vis, tac=3*tac, lm_linear=2*lin, lm_attention=3*att, lm_head=2*head, lora=0.0)
    else: parts = dict(vision=vis, tac=tac, lm_linear=2*lin, lm_attention=3*att, lm_head=2*head,
                       lora=3 * 2.0 * lora_params_per_token(s, lora_r) * T)
    parts['total'] = sum(parts.values())
    return parts

def lm_forward_flops_full(s:dict, T:int) -> float:
    "LM forward FLOPs of one sequence of T positions with non-causal attention counting and logits everywhere (what FlopCounterMode counts)."
    return 2.0*lm_block_params(s)*T + s['layers']*4.0*s['hidden']*T*T + 2.0*s['hidden']*s['vocab']*T

def flop_crosscheck(shape:dict, T:int=None) -> dict:
    "Compare the analytic LM and vision forward FLOPs with torch's FlopCounterMode on a meta-device model (ratio ~1)."
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    T = T or n_image_tokens(shape) + (shape['text_min'] + shape['text_max']) // 2
    with torch.device('meta'):
        model = __import__('libra_nb.modeling', fromlist=['x']).LibraForConditionalGeneration._from_config(
            libra_config(shape), attn_implementation='eager')
        emb = torch.empty(1, T, shape['hidden'])
        with FlopCounterMode(display=False) as fc: model.language_model(inputs_embeds=emb)
        lm = float(fc.get_total_flops())
        px = torch.empty(2, 3, shape['image_size'], shape['image_size'])
        with FlopCounterMode(display=False) as fc: model.vision_tower(px)
        vis = float(fc.get_total_flops())
    return dict(T=T, lm_counted=lm, lm_formula=lm_forward_flops_full(shape, T), lm_ratio=lm / lm_forward_flops_full(shape, T),
                vision_counted=vis, vision_formula=vision_flops(shape), vision_ratio=vis / vision_flops(shape))

# ------------------------------------------------------------------------------------------------------- environment
def versions() -> dict:
    import torch, transformers
    d = dict(python=platform.python_version(), torch=torch.__version__, transformers=transformers.__version__)
    for m in ('peft', 'accelerate', 'PIL', 'numpy', 'flash_attn'):
        try: d[m] = __import__(m).__version__
        except Exception: pass
    return d

def machine(device:str) -> str:
    import torch
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    s = f"{cpu}, {os.cpu_count()} logical CPUs"
    try: s += f", load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    except OSError: pass
    if device.startswith('cuda') and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        s = f"{torch.cuda.get_device_name()} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs); host {s}"
    return s

def command_line() -> str:
    return 'python ' + ' '.join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0]) if os.path.exists(sys.argv[0]) else sys.argv[0]] + sys.argv[1:])

def now_utc() -> str: return datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')

def sync(device:str):
    import torch
    if str(device).startswith('cuda'): torch.cuda.synchronize()

@contextlib.contextmanager
def timer(device:str, out:dict, key:str):
    sync(device); t0 = time.perf_counter()
    yield
    sync(device); out[key] = time.perf_counter() - t0

# ------------------------------------------------------------------------------------------------------------ output
def md_table(rows:list[dict], cols:list[tuple[str, str, str]]) -> str:
    "A markdown table of `rows`; `cols` are (header, key, format) with format like '.2f' ('' for str)."
    out = ['| ' + ' | '.join(c[0] for c in cols) + ' |', '|' + '|'.join('---' for _ in cols) + '|']
    for r in rows:
        cells = []
        for _, k, f in cols:
            v = r.get(k)
            cells.append('–' if v is None else (format(v, f) if f and isinstance(v, (int, float)) else str(v)))
        out.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(out)

def write_json(path, data:dict) -> Path:
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))
    return path

def append_results(section:str, path:Path=RESULTS_MD, heading:str=HEADING) -> Path:
    "Append `section` (markdown, starting with '### ...') to the `## gpu` part of RESULTS.md."
    return _append_results(section, heading, path)

def finish(result:dict, json_path, results_md, markdown:str, heading:str=HEADING):
    "Store the markdown in the result, write the JSON, and append the markdown under `heading` of RESULTS.md (unless results_md is '')."
    result['markdown'] = markdown
    p = write_json(json_path, result); print(f"wrote {p}")
    if results_md: print(f"appended to {append_results(markdown, Path(results_md), heading)}")
    print(markdown)

if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == 'append':
        for j in sys.argv[2:]:
            md = json.loads(Path(j).read_text())['markdown']
            print(f"appended {j} to {append_results(md)}")
    else: print(__doc__)
