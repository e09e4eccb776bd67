#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has PyTorch but no Go and no
# network: a trimmed Go toolchain, gotch's source, a file-based module proxy holding the
# modules that the model package's tests and bertnode build from, and the shared PyTorch
# reference script (SHARED, default ../shared). Writes .device/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device
rm -rf "$out" && mkdir -p "$out/proxy"
goroot=$(go env GOROOT)
# Anchored: go/doc is GOROOT's doc folder, not the go/doc package (go/format needs it).
tar -C "$(dirname "$goroot")" --anchored --exclude='*_test.go' --exclude='*/testdata' \
  --exclude='go/test' --exclude='go/doc' --exclude='go/api' --exclude='go/misc' --exclude='go/src/cmd' \
  --exclude='go/lib/wasm' --exclude='go/bin/gofmt' \
  $(for t in pprof trace cover fix test2json covdata doc; do echo --exclude=go/pkg/tool/linux_amd64/$t; done) \
  -cf - "$(basename "$goroot")" | xz -T0 -6 > "$out/go.tar.xz"
gotch=$(go mod download -json github.com/sugarme/gotch@v0.9.1 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
tar -C "$(dirname "$gotch")" --exclude='*/example' --exclude='*/gen' --exclude='*_test.go' \
  -cf - "$(basename "$gotch")" | xz -T0 -6 > "$out/gotch.tar.xz"
cache=$(go env GOMODCACHE)/cache/download
# Every module's list/.info/.mod (the build graph needs them), zips only for what is built.
(cd "$cache" && find . -path '*/@v/*' \( -name list -o -name '*.info' -o -name '*.mod' \) -print0 |
  xargs -0 cp --parents -t "$OLDPWD/$out/proxy")
pkgs=$out/packages.txt # each built package of another module: import path, module@version, embedded files
go list -deps -test -f '{{with .Module}}{{if not .Main}}{{$.ImportPath}} {{.Path}}@{{.Version}} {{join $.EmbedFiles ","}}{{end}}{{end}}' \
  ./model/ ./train/ ./tools/gotchadapt ./cmd/bertnode | grep -v sugarme/gotch | sort -u > "$pkgs"
cut -d' ' -f2 "$pkgs" | sort -u | while read -r m; do
  p=$(echo "${m%@*}" | sed 's/[A-Z]/!\L&/g')
  cp "$cache/$p/@v/${m#*@}.zip" "$out/proxy/$p/@v/"
done
# A zip holds its whole module, and most of some is what no build reads: tests,
# testdata, fuzz corpora (pierrec/lz4: 8 of its 8.4 MB), examples, documents. Keep only
# the files in the directories of the packages built, what they embed, and the module's
# go.mod and licences. The trimmed zips no longer match go.sum's hashes, so
# gpu-check.sh builds with a go.mod copy and an empty go.sum beside it (-modfile,
# GOSUMDB=off): Go hashes what this proxy serves.
python3 - "$out/proxy" "$pkgs" <<'PY'
import collections, os, sys, zipfile
dirs = collections.defaultdict(set)  # module@version -> package directories in its zip
embeds = collections.defaultdict(set)  # module@version -> embedded files, from its root
for line in open(sys.argv[2]):
    pkg, mv, *emb = line.split()
    d = pkg[len(mv.rsplit('@', 1)[0]):].strip('/')
    dirs[mv].add(d)
    for f in emb[0].split(',') if emb else []:
        embeds[mv].add(f'{d}/{f}'.lstrip('/'))
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if not f.endswith('.zip'):
            continue
        path = os.path.join(root, f)
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(path + '.tmp', 'w', zipfile.ZIP_DEFLATED) as zout:
            for e in zin.infolist():
                slash = e.filename.index('/', e.filename.index('@'))  # module@version/file
                mv, rel = e.filename[:slash], e.filename[slash + 1:]
                d, _, name = rel.rpartition('/')
                keep = d in dirs[mv] or rel in embeds[mv] or d == '' and (name == 'go.mod' or name.upper().startswith(('LICENSE', 'LICENCE', 'COPYING', 'NOTICE')))
                if not keep or name.endswith('_test.go'):
                    continue
                zout.writestr(e, zin.read(e), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.replace(path + '.tmp', path)
PY
rm "$pkgs"
cp "${SHARED:-../shared}/bench/torch_gpu_step.py" "$out/"
du -sh "$out"
