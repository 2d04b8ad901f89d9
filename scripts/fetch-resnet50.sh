#!/usr/bin/env bash
# Downloads the pretrained ResNet-50 v1 of the ONNX model zoo and the ImageNet
# class list, and installs them as a model of the repository:
#   models/resnet50-pretrained/{config.pbtxt,labels.json,1/model.onnx}
# Needs internet access, curl and Go (to read the model's inputs and outputs).
#
#   scripts/fetch-resnet50.sh            install unless already installed
#   scripts/fetch-resnet50.sh --force    download and install again
#
# Overrides (environment):
#   RESNET50_URL   the ONNX file (default: the zoo's resnet50-v1-7.onnx, 98 MB,
#                  through GitHub's raw redirect, then its LFS media host)
#   LABELS_URL     1000 ImageNet class names, one per line, optionally
#                  numbered "0, tench" (default: PyTorch Hub's list)
#   MODEL_NAME     the model's name and directory (default resnet50-pretrained)
#
# The zoo's ResNet-50 v1 (converted from MXNet Gluon) reads "data"
# [N,3,224,224] and writes logits "resnetv17_dense0_fwd" [N,1000]; the names
# written to config.pbtxt are read from the downloaded file itself. It expects
# the torchvision evaluation transform: shorter side resized to 256, a
# 224x224 center crop, RGB scaled to [0,1] and normalized with the ImageNet
# mean and std, NCHW.
set -euo pipefail

zoo_file=validated/vision/classification/resnet/model/resnet50-v1-7.onnx
model_urls=(
  "https://github.com/onnx/models/raw/main/$zoo_file"
  "https://media.githubusercontent.com/media/onnx/models/main/$zoo_file"
)
if [[ -n "${RESNET50_URL:-}" ]]; then
  model_urls=("$RESNET50_URL")
fi
LABELS_URL="${LABELS_URL:-https://raw.githubusercontent.com/pytorch/hub/master/imagenet_classes.txt}"
MODEL_NAME="${MODEL_NAME:-resnet50-pretrained}"
# MIN_MODEL_BYTES rejects what is not the model: a Git LFS pointer (~130
# bytes) or an HTML error page. The real file is about 98 MB.
MIN_MODEL_BYTES=50000000
# MAX_BATCH_SIZE is announced when the model's batch dimension is variable.
MAX_BATCH_SIZE=8
NUM_CLASSES=1000

fail() { echo "fetch-resnet50: $*" >&2; exit 1; }
say() { echo "fetch-resnet50: $*" >&2; }

force=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) fail "unknown argument $arg (see --help)" ;;
  esac
done

command -v curl >/dev/null || fail "curl is required"
command -v go >/dev/null || fail "go is required (it reads the downloaded model's inputs and outputs)"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$root/models"
dest="$models/$MODEL_NAME"

if [[ "$force" == false && -s "$dest/1/model.onnx" && -s "$dest/labels.json" && -s "$dest/config.pbtxt" ]]; then
  say "$dest is already installed (use --force to download it again)"
  exit 0
fi

mkdir -p "$models"
# The work directory is hidden and next to the destination, so the final
# move is a rename and a model repository scan never sees half a model.
work="$(mktemp -d "$models/.fetch-$MODEL_NAME-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# fetch URL FILE WHAT downloads one file.
fetch() {
  say "downloading $3 from $1"
  curl --fail --location --silent --show-error --retry 3 --connect-timeout 30 -o "$2" "$1"
}

# model_problem FILE says why FILE is not the model, or nothing. A GitHub
# URL that does not resolve Git LFS gives a ~130-byte pointer file.
model_problem() {
  local size
  size="$(wc -c <"$1" | tr -d ' ')"
  if LC_ALL=C grep -aq '^version https://git-lfs' < <(head -c 64 "$1"); then
    echo "a Git LFS pointer instead of the model"
  elif ((size < MIN_MODEL_BYTES)); then
    echo "$size bytes, expected about 98 MB"
  fi
}

model_url=""
for url in "${model_urls[@]}"; do
  if ! fetch "$url" "$work/model.onnx" "the ResNet-50 ONNX model"; then
    continue
  fi
  problem="$(model_problem "$work/model.onnx")"
  if [[ -z "$problem" ]]; then
    model_url="$url"
    break
  fi
  say "$url gave $problem"
done
[[ -n "$model_url" ]] ||
  fail "could not download the model from ${model_urls[*]} (no internet access, or the file moved: set RESNET50_URL)"
fetch "$LABELS_URL" "$work/classes.txt" "the ImageNet class list" ||
  fail "could not download the class list from $LABELS_URL (no internet access, or the file moved: set LABELS_URL)"
size="$(wc -c <"$work/model.onnx" | tr -d ' ')"

# Inputs and outputs as read from the file: "input|output NAME TYPE [d0,...]".
io="$(cd "$root" && go run ./pred/cmd/genmodels -inspect "$work/model.onnx")" ||
  fail "the download from $model_url is not a readable ONNX model"
inputs="$(grep -c '^input ' <<<"$io" || true)"
[[ "$inputs" == 1 ]] || fail "expected one model input, found $inputs:"$'\n'"$io"
read -r _ in_name in_type in_dims < <(grep '^input ' <<<"$io")
read -r _ out_name out_type out_dims < <(grep '^output ' <<<"$io" | head -n 1)
[[ "$in_type" == FLOAT && "$out_type" == FLOAT ]] || fail "expected float32 input and output:"$'\n'"$io"
IFS=, read -r -a in_shape <<<"${in_dims//[\[\]]/}"
IFS=, read -r -a out_shape <<<"${out_dims//[\[\]]/}"
[[ "${#in_shape[@]}" == 4 && "${in_shape[1]}" == 3 && "${in_shape[2]}" == 224 && "${in_shape[3]}" == 224 ]] ||
  fail "expected input [N,3,224,224], found $in_name $in_dims"
[[ "${#out_shape[@]}" == 2 && "${out_shape[1]}" == "$NUM_CLASSES" ]] ||
  fail "expected output [N,$NUM_CLASSES], found $out_name $out_dims"
[[ "$in_name" == data && "$out_name" == resnetv17_dense0_fwd ]] ||
  say "note: tensors are $in_name -> $out_name (the zoo's resnet50-v1-7 has data -> resnetv17_dense0_fwd)"

# A fixed batch dimension (e.g. 1) is the most pred may batch; a variable one
# allows MAX_BATCH_SIZE.
max_batch="$MAX_BATCH_SIZE"
if [[ "${in_shape[0]}" =~ ^[1-9][0-9]*$ ]]; then
  max_batch="${in_shape[0]}"
fi

# Labels: "0, tench" lines when numbered, else every non-empty line.
tr -d '\r' <"$work/classes.txt" >"$work/classes.clean"
if grep -Eq '^[0-9]+, ' "$work/classes.clean"; then
  grep -E '^[0-9]+, ' "$work/classes.clean" | sed -E 's/^[0-9]+, //' >"$work/labels.txt"
else
  grep -v '^[[:space:]]*$' "$work/classes.clean" >"$work/labels.txt" || true
fi
count="$(wc -l <"$work/labels.txt" | tr -d ' ')"
[[ "$count" == "$NUM_CLASSES" ]] || fail "$LABELS_URL holds $count class names, expected $NUM_CLASSES"

stage="$work/$MODEL_NAME"
mkdir -p "$stage/1"
mv "$work/model.onnx" "$stage/1/model.onnx"
{
  echo "["
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/  "/' -e 's/$/",/' "$work/labels.txt" | sed '$ s/,$//'
  echo "]"
} >"$stage/labels.json"

cat >"$stage/config.pbtxt" <<EOF
# Written by scripts/fetch-resnet50.sh: the ONNX model zoo's pretrained
# ResNet-50 v1 ($model_url).
# proto-file: api/proto/prepred/pred/v1/config.proto
# proto-message: prepred.pred.v1.ModelConfig
name: "$MODEL_NAME"
platform: "onnxruntime_onnx"
max_batch_size: $max_batch
inputs {
  name: "$in_name"
  dtype: DATA_TYPE_FLOAT32
  shape: [3, 224, 224]
}
outputs {
  name: "$out_name"
  dtype: DATA_TYPE_FLOAT32
  shape: [$NUM_CLASSES]
}
labels_file: "labels.json"
preprocess {
  schema_version: 1
  input: "$in_name"
  color_order: COLOR_ORDER_RGB
  resize_mode: RESIZE_MODE_SHORTER_SIDE_CENTER_CROP
  interpolation: INTERPOLATION_BILINEAR
  width: 224
  height: 224
  resize_shorter_side: 256
  scale: 0.003921569
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  layout: LAYOUT_NCHW
  dtype: DATA_TYPE_FLOAT32
}
version_policy {
  latest { num_versions: 1 }
}
output_kind: OUTPUT_KIND_LOGITS
EOF

if [[ -e "$dest" ]]; then
  mv "$dest" "$work/previous"
fi
mv "$stage" "$dest"

sum="$(sha256sum "$dest/1/model.onnx" 2>/dev/null | cut -d' ' -f1 || true)"
say "installed $dest ($size bytes${sum:+, sha256 $sum}; $in_name $in_dims -> $out_name $out_dims, max_batch_size $max_batch)"
cat <<EOF
Installed $MODEL_NAME into $dest.
pred serves every model in its repository (--model-repository, default "models"); point prep at this one with
  PREP_MODEL=$MODEL_NAME    (or: prep --model $MODEL_NAME)
EOF
