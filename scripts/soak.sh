#!/usr/bin/env bash
# A soak of the long-running daemons (docs/cluster.md, "Soak: what a long-running cluster
# accumulates"): a local cluster (3 coordinators, 2 nodes) runs job after job, with
# uploads of new data, cancels, deletes, a node SIGKILLed and restarted mid-job, tiny BERT
# jobs and predict jobs on their models; between jobs it samples every process
# (goroutines, open fds, RSS, threads) and what is on disk, one CSV line per process.
#
#   scripts/soak.sh [JOBS] [DIR]      JOBS: 96 by default; DIR: /tmp/bertnode-soak
#
# After the last job it waits IDLE seconds (default 660: past the coordinators'
# --blob-file-grace of 10 min, after which they have removed the blob files no job
# references) and samples once more ("JOBS+idle"). Writes DIR/samples.csv, prints
# the first and last samples of each process, and leaves the cluster running for a
# look (stop it with bin/bertnode cluster down --dir DIR/cluster). Not part of make
# test: 96 jobs take ~10 min on 2 cores, then the idle wait.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-96}
IDLE=${IDLE:-660}
DIR=${2:-/tmp/bertnode-soak}
BN=$PWD/bin/bertnode
SMS=$PWD/data/sms_spam/SMSSpamCollection
VOCAB=$PWD/data/vocab/bert-base-uncased.vocab.txt
C=$DIR/cluster
W=$DIR/work
CSV=$DIR/samples.csv

[ -x "$BN" ] || make build
if [ ! -f "$C/cluster.json" ]; then
	mkdir -p "$W"
	"$BN" cluster up --dir "$C" --coordinators 3 --nodes 2 --threads 1 --gossip-profile local
fi
eval "$("$BN" cluster env --dir "$C")"
READ_TOKEN=$("$BN" token --read-only)

pid() { jq -r --arg n "$1" '.procs[] | select(.name == $n) | .pid' "$C/cluster.json"; }
# metric NAME TEXT: the value of an unlabelled metric in a /metrics text.
metric() { awk -v n="$1" '$1 == n { printf "%d", $2 }' <<<"$2"; }
bytes() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
count() { find "$@" 2>/dev/null | wc -l; }

# sample JOBNUM: one line per process. disk: the whole data directory; for a
# coordinator, raft.db, snapshots and blobs (bytes and files); for a node, jobs/ (bytes
# and directories), uploads/ and leftovers (*.tmp, .upload-*, staging); state: the
# latest raft snapshot and the size of GET /v1/jobs.
sample() {
	local n=$1 jobsz
	jobsz=$(curl -sf -H "Authorization: Bearer $READ_TOKEN" "http://${BERTNODE_COORDINATOR%%,*}/v1/jobs" | wc -c)
	[ -f "$CSV" ] || echo "jobs,time,proc,pid,goroutines,fds,rss_kb,threads,disk_b,raftdb_b,snap_b,blobs_b,blobs_n,jobdirs_b,jobdirs_n,uploads_b,leftovers_n,getjobs_b" >"$CSV"
	for name in $(jq -r '.procs[].name' "$C/cluster.json"); do
		local p d m url fds rss thr
		p=$(pid "$name")
		d=$(jq -r --arg n "$name" '.procs[] | select(.name == $n) | .data_dir' "$C/cluster.json")
		if [[ $name == c* ]]; then
			url="http://$(jq -r --arg n "$name" '.procs[] | select(.name == $n) | .api' "$C/cluster.json")/metrics"
		else
			url="http://$(jq -r --arg n "$name" '.procs[] | select(.name == $n) | .http' "$C/cluster.json")/metrics"
		fi
		m=$(curl -sf -H "Authorization: Bearer $READ_TOKEN" "$url" || true)
		fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
		rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		thr=$(awk '/^Threads/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		echo "$n,$(date +%s),$name,$p,$(metric go_goroutines "$m"),$fds,$rss,$thr,$(bytes "$d"),$(bytes "$d/raft.db"),$(bytes "$d/snapshots"),$(bytes "$d/blobs"),$(count "$d/blobs" -type f),$(bytes "$d/jobs"),$(count "$d/jobs" -mindepth 1 -maxdepth 1 -type d),$(bytes "$d/uploads"),$(count "$d" \( -name '*.tmp' -o -name '.upload-*' -o -name '*.staging*' \)),$jobsz" >>"$CSV"
	done
}

# spec NAME DATA LINES...: a job spec file.
spec() {
	local f=$W/$1.yaml data=$2
	shift 2
	printf '%s\n' "train: $data" 'data: {format: labeltext, delimiter: "\t"}' "eval_split: 0.2" "metric: accuracy" \
		"cluster: {nodes: 2, min_nodes: 1, rejoin_window: 2s, ring_timeout: 5s}" "$@" >"$f"
	echo "$f"
}
submit() { "$BN" submit "$@" | awk '/^submitted / { print $2 }'; }
job() { curl -sf -H "Authorization: Bearer $READ_TOKEN" "http://${BERTNODE_COORDINATOR%%,*}/v1/jobs/$1"; }
# await JOB FILTER: wait (up to 5 min) until the job's JSON passes the jq FILTER.
await() {
	for _ in $(seq 1500); do
		job "$1" | jq -e "$2" >/dev/null && return
		sleep 0.2
	done
	echo "soak: $1 never passed $2" >&2
	return 1
}
waitjob() { await "$1" '.state | IN("succeeded", "failed", "cancelled")'; }
running() { await "$1" '.progress.step > 0'; }
# restart NAME: start a node again as cluster up did, and record its new PID.
restart() {
	local args log
	mapfile -t args < <(jq -r --arg n "$1" '.procs[] | select(.name == $n) | .args[]' "$C/cluster.json")
	log=$(jq -r --arg n "$1" '.procs[] | select(.name == $n) | .log' "$C/cluster.json")
	setsid "$BN" "${args[@]}" >>"$log" 2>&1 </dev/null &
	jq --arg n "$1" --argjson p $! '(.procs[] | select(.name == $n) | .pid) = $p' "$C/cluster.json" >"$C/cluster.json.new"
	mv "$C/cluster.json.new" "$C/cluster.json"
}

sample 0
for i in $(seq 1 "$JOBS"); do
	# New data each job: a new upload (and plan) for the blob store to keep or drop.
	data=$W/d$i.tsv
	shuf -n 1500 --random-source=<(yes "$i") "$SMS" >"$data"
	short=$(spec short "$data" "model: toy" "batch_size: 64" "epochs: 2" "lr: 0.05" "eval_steps: 10" "save_steps: 10")
	long=$(spec long "$SMS" "model: toy" "batch_size: 16" "epochs: 40" "lr: 0.05" "eval_steps: 500" "save_steps: 100")
	case $((i % 8)) in
	1) # kept: job history stays until deleted
		waitjob "$(submit "$short")" ;;
	2 | 5)
		j=$(submit "$short") && waitjob "$j" && "$BN" delete "$j" ;;
	3) # cancelled mid-job, then deleted
		j=$(submit "$long") && running "$j" && sleep 2 && "$BN" cancel "$j" && waitjob "$j" && "$BN" delete "$j" ;;
	4) # a node SIGKILLed mid-job and started again; the job goes on without it, then with it
		j=$(submit "$long") && running "$j" && sleep 2
		kill -KILL "$(pid n2)" && sleep 1 && restart n2
		waitjob "$j" && "$BN" delete "$j" ;;
	6) # tiny BERT (libtorch) and a predict job on its model, both deleted
		tiny=$(spec tiny "$data" "model: tiny" "tokenizer: $VOCAB" "max_length: 32" "batch_size: 16" "max_steps: 20" "lr: 1.0e-3" "eval_steps: 10" "save_steps: 10")
		j=$(submit "$tiny") && waitjob "$j"
		head -300 "$data" >"$W/in.tsv"
		p=$("$BN" infer --model "job:$j" --input "$W/in.tsv" --format labeltext --delimiter $'\t' --block-records 64 --nodes 2 | awk '/^submitted / { print $2 }')
		waitjob "$p" && "$BN" download "$p" --output "$W/out.jsonl" && "$BN" delete "$p" "$j" ;;
	7) # cancelled, kept
		j=$(submit "$long") && running "$j" && sleep 1 && "$BN" cancel "$j" && waitjob "$j" ;;
	0) # a new job resumes a cancelled one from its checkpoint
		j=$(submit "$long") && running "$j" && sleep 2 && "$BN" cancel "$j" && waitjob "$j"
		r=$(submit "$short" --resume "$j") && waitjob "$r" && "$BN" delete "$r" "$j" ;;
	esac
	sample "$i"
	echo "soak: job $i done ($(tail -5 "$CSV" | cut -d, -f3,5,6,7 | tr '\n' ' '))"
done
sleep "$IDLE"
sample "$JOBS+idle"
# first, last and idle sample of each process
column -s, -t < <(head -1 "$CSV"; grep -E "^(0|$JOBS|$JOBS\+idle)," "$CSV" | sort -t, -k3,3 -s)
