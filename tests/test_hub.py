"""No network at import; the hub is probed when a hub path is first used, and fails fast offline."""
import os
import subprocess
import sys
import textwrap

_NO_NETWORK = """
import socket, time
calls = []
def refuse(*a, **k):
    calls.append(a[:1])
    raise socket.gaierror(socket.EAI_NONAME, "no network in this test")
socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = refuse
"""


def _python(code, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    return subprocess.run([sys.executable, "-c", _NO_NETWORK + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_import_touches_no_network(tmp_path):
    p = _python("""
        import wanda_core, wanda_core.runs.config, wanda_core.cli, wanda_core.models.hub
        wanda_core.cli.build_parser()
        assert calls == [], calls
        assert wanda_core.models.hub._online is None  # not probed yet
        """, tmp_path)
    assert p.returncode == 0, p.stderr


def test_hub_path_probes_then_fails_fast_with_what_to_do(tmp_path):
    # datasets and huggingface_hub imported before the probe: their offline flags are set in place
    p = _python("""
        import os, torch, datasets
        import huggingface_hub.constants as hc
        from wanda_core.models import hub
        assert calls == [] and not hc.HF_HUB_OFFLINE
        messages = []
        for load in (lambda: hub.load_dataset_text("wikitext2"),
                     lambda: hub.load_pretrained("someone/not-cached-model", torch.float32)):
            t = time.perf_counter()
            try:
                load()
            except hub.HubUnavailable as e:
                messages.append(str(e))
            assert time.perf_counter() - t < 2, time.perf_counter() - t
        assert calls, "the hub was never probed"
        assert hc.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"
        assert len(messages) == 2, messages
        assert "dataset 'wikitext2' needs the Hugging Face hub" in messages[0]
        assert "cannot be reached" in messages[1] and "smollm2-135m" in messages[1], messages[1]
        print("ok")
        """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout


def test_embedded_run_touches_no_network(tmp_path):
    # the default path (embedded model and text, the offline zero-shot proxies through lm-eval and
    # datasets' json loader) needs no probe and opens no connection
    p = _python(f"""
        from wanda_core import RunConfig, run
        from wanda_core.models import hub
        run(RunConfig(model="tiny-llama", method="dense", seqlen=32, eval_windows=1, tasks=("wiki_lastword",),
                      task_limit=2), {str(tmp_path / "runs")!r}, progress=False)
        assert calls == [], calls
        assert hub._online is None
        """, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
