package coordinator

import (
	"errors"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/bertnode/bertnode/api"
)

// routes registers the API of docs/cluster.md. Every route needs the bearer token,
// /metrics too: a scraper sends it (Prometheus: authorization.credentials_file).
func (s *Server) routes() {
	s.route("GET /v1/status", readable, s.getStatus)
	s.route("GET /v1/cluster", readable, s.getCluster)
	s.route("GET /v1/self", own, s.getSelf)

	s.route("GET /v1/members", readable, s.getMembers)
	s.route("POST /v1/members", onLeader, s.postMember)
	s.route("DELETE /v1/members/{id}", onLeader, s.deleteMember)

	s.route("GET /v1/nodes", readable, s.getNodes)
	s.route("POST /v1/nodes", onLeader, s.postNode)
	s.route("GET /v1/nodes/{id}", readable, s.getNode)
	s.route("GET /v1/nodes/{id}/assignment", readable, s.getAssignment)
	s.route("POST /v1/nodes/{id}/drain", onLeader, s.postDrain)
	s.route("DELETE /v1/nodes/{id}", onLeader, s.deleteNode)

	s.route("GET /v1/jobs", readable, s.getJobs)
	s.route("POST /v1/jobs", onLeader, s.postJob)
	s.route("GET /v1/jobs/{id}", readable, s.getJob)
	s.route("GET /v1/jobs/{id}/logs", readable, s.getLogs)
	s.route("GET /v1/jobs/{id}/outputs", readable, s.getOutputs)
	s.route("GET /v1/deleted-jobs", readable, s.getDeleted)
	s.route("POST /v1/jobs/{id}/cancel", onLeader, s.postCancel)
	s.route("DELETE /v1/jobs/{id}", onLeader, s.deleteJob)
	s.route("POST /v1/jobs/{id}/progress", onLeader, report(s, CmdProgress, s.progress))
	s.route("POST /v1/jobs/{id}/failure", onLeader, report(s, CmdFailure, s.failure))
	s.route("POST /v1/jobs/{id}/checkpoint", onLeader, report(s, CmdCheckpoint, func(id string, r api.CheckpointReport) any { return JobCheckpoint{id, r} }))
	s.route("POST /v1/jobs/{id}/result", onLeader, report(s, CmdResult, func(id string, r api.ResultReport) any { return JobResult{id, r} }))
	s.route("POST /v1/jobs/{id}/lease", onLeader, s.postLease)
	s.route("POST /v1/jobs/{id}/renew", onLeader, s.postRenew)
	s.route("POST /v1/jobs/{id}/units", onLeader, report(s, CmdUnitDone, func(id string, r api.UnitReport) any { return JobUnit{id, r} }))
	s.route("POST /v1/jobs/{id}/done", onLeader, report(s, CmdDone, s.done))

	s.route("PUT /v1/blobs/{sha}", local, s.putBlob)
	s.route("GET /v1/blobs/{sha}", local, s.getBlob) // and HEAD
	s.route("POST /v1/blobs/{sha}/holders", onLeader, s.postHolder)

	s.route("GET /metrics", own, s.metrics.serve)
	s.uiRoutes()
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	s.view(w, r, func(*State) []string { return []string{topicJobs, topicNodes, topicMembers} }, func(st *State) (any, error) {
		_, leader := s.raft.LeaderWithID()
		return api.Status{Leader: string(leader), Members: s.members(st), Nodes: nodeList(st), Jobs: jobList(st), Index: st.Index}, nil
	})
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	s.view(w, r, func(*State) []string { return []string{topicMembers} }, func(st *State) (any, error) {
		_, leader := s.raft.LeaderWithID()
		c := api.Cluster{Leader: string(leader), API: []string{}, Gossip: []string{}, GossipProfile: s.cfg.GossipProfile}
		for _, m := range s.members(st) {
			if m.APIAddr != "" {
				c.API = append(c.API, m.APIAddr)
			}
			if m.GossipAddr != "" {
				c.Gossip = append(c.Gossip, m.GossipAddr)
			}
		}
		return c, nil
	})
}

func (s *Server) getMembers(w http.ResponseWriter, r *http.Request) {
	s.view(w, r, func(*State) []string { return []string{topicMembers} }, func(st *State) (any, error) { return s.members(st), nil })
}

func (s *Server) postMember(w http.ResponseWriter, r *http.Request) {
	var j api.JoinMember
	if err := decodeBody(w, r, &j); err != nil {
		writeError(w, err)
		return
	}
	idx, err := s.join(r.Context(), j)
	if err != nil {
		writeError(w, err)
		return
	}
	written(w, idx, nil)
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) {
	idx, err := s.removeMember(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	written(w, idx, nil)
}

func nodeList(st *State) []api.Node {
	out := make([]api.Node, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b api.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// jobNumber orders job IDs as they were given: job-2 before job-10.
func jobNumber(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "job-"))
	return n
}

func jobList(st *State) []api.Job {
	out := make([]api.Job, 0, len(st.Jobs))
	for _, j := range st.Jobs {
		out = append(out, *j)
	}
	slices.SortFunc(out, func(a, b api.Job) int { return jobNumber(a.ID) - jobNumber(b.ID) })
	return out
}

func (s *Server) getNodes(w http.ResponseWriter, r *http.Request) {
	s.view(w, r, func(*State) []string { return []string{topicNodes} }, func(st *State) (any, error) { return nodeList(st), nil })
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.view(w, r, func(*State) []string { return []string{topicNode(id)} }, func(st *State) (any, error) {
		n := st.Nodes[id]
		if n == nil {
			return nil, errorf(http.StatusNotFound, "no node %q", id)
		}
		return n, nil
	})
}

func (s *Server) postNode(w http.ResponseWriter, r *http.Request) {
	var b api.RegisterNode
	if err := decodeBody(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, CmdNodeRegister, b)
}

// write commits a command and answers with its result.
func (s *Server) write(w http.ResponseWriter, r *http.Request, typ string, body any) {
	v, idx, err := s.commit(r.Context(), typ, body)
	if err != nil {
		writeError(w, err)
		return
	}
	written(w, idx, v)
}

// assignmentTopics are what node's assignment depends on: which job it is on, and
// that job's generation, reconfiguration and state; not its progress.
func assignmentTopics(st *State, node string) []string {
	t := []string{topicAssign(node)}
	if n := st.Nodes[node]; n != nil && n.Job != "" {
		t = append(t, topicGen(n.Job))
	}
	return t
}

// Assignment is what node is told to do.
func (st *State) Assignment(node string) (api.Assignment, error) {
	n := st.Nodes[node]
	if n == nil {
		return api.Assignment{}, errorf(http.StatusNotFound, "no node %q (register first)", node)
	}
	a := api.Assignment{Index: st.TopicIndex(assignmentTopics(st, node)...), Rank: -1, Reregister: n.Unproven}
	j := st.Jobs[n.Job]
	if j == nil {
		return a, nil
	}
	jc := *j
	a.Job = &jc
	if j.Gen != nil {
		a.Gen = j.Gen.Gen
		if j.Waiting == nil {
			a.Rank = j.Gen.Rank(node)
		}
	}
	return a, nil
}

func (s *Server) getAssignment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.view(w, r, func(st *State) []string { return assignmentTopics(st, id) }, func(st *State) (any, error) { return st.Assignment(id) })
}

func (s *Server) getJobs(w http.ResponseWriter, r *http.Request) {
	s.view(w, r, func(*State) []string { return []string{topicJobs} }, func(st *State) (any, error) { return jobList(st), nil })
}

// getDeleted answers the jobs bertnode delete removed, with their submission times.
func (s *Server) getDeleted(w http.ResponseWriter, r *http.Request) {
	s.view(w, r, func(*State) []string { return []string{topicDeleted} }, func(st *State) (any, error) { return maps.Clone(st.Deleted), nil })
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.view(w, r, func(*State) []string { return []string{topicJob(id)} }, func(st *State) (any, error) { return st.job(id) })
}

// getOutputs answers a predict job's units' output blobs.
func (s *Server) getOutputs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.view(w, r, func(*State) []string { return []string{topicJob(id)} }, func(st *State) (any, error) {
		j, err := st.job(id)
		if err == nil && j.Kind != api.KindPredict {
			err = errorf(http.StatusConflict, "job %s is not a predict job: it has no outputs", id)
		}
		return api.JobOutputs{Blobs: outputBlobs(st.Outputs[id])}, err
	})
}

func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.view(w, r, func(*State) []string { return []string{topicLogs(id)} }, func(st *State) (any, error) {
		if _, err := st.job(id); err != nil {
			return nil, err
		}
		return api.JobLogs{Index: st.TopicIndex(topicLogs(id)), Events: append([]api.Event{}, st.Events[id]...)}, nil
	})
}

func (s *Server) postDrain(w http.ResponseWriter, r *http.Request) {
	var d api.NodeDrain
	if err := decodeBody(w, r, &d); err != nil {
		writeError(w, err)
		return
	}
	s.write(w, r, CmdNodeDrain, NodeDrain{Node: r.PathValue("id"), Drain: d.Drain})
}

// deleteNode removes a node that is dead or left and no running job needs.
func (s *Server) deleteNode(w http.ResponseWriter, r *http.Request) {
	s.write(w, r, CmdNodeRemove, NodeRemove{Node: r.PathValue("id")})
}

func (s *Server) postCancel(w http.ResponseWriter, r *http.Request) {
	s.write(w, r, CmdCancel, JobCancel{Job: r.PathValue("id")})
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request) {
	s.write(w, r, CmdJobDelete, JobDelete{Job: r.PathValue("id")})
}

// report handles a node's report on a job: decode, wrap in its command, commit.
func report[R any](s *Server, typ string, wrap func(job string, r R) any) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		var rep R
		if err := decodeBody(w, r, &rep); err != nil {
			writeError(w, err)
			return
		}
		s.write(w, r, typ, wrap(r.PathValue("id"), rep))
	}
}

func (s *Server) postJob(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	job, err := s.newJob(req)
	if err == nil {
		err = s.jobSupported(job)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	v, idx, err := s.commit(r.Context(), CmdJobSubmit, JobSubmit{Job: job})
	if err != nil {
		writeError(w, err)
		return
	}
	written(w, idx, api.SubmitResponse{ID: v.(string)})
}

// jobSupported refuses job while some member's FSM would apply its submission
// otherwise than this build's (protocol.go).
func (s *Server) jobSupported(job api.Job) error {
	switch {
	case job.Kind == api.KindPredict:
		// An FSM before predict jobs would take the submission for a training job's.
		return s.supports("a predict job", appliers[CmdLease].since)
	case len(job.Uploads) > 0:
		return s.supports("a job with an uploaded model or tokenizer", protocolUploads)
	}
	return nil
}

// newJob checks a submitted spec: its fields, and that its data is where it says.
func (s *Server) newJob(req api.SubmitRequest) (api.Job, error) {
	if api.SpecKind(req.Spec) == api.KindPredict {
		return s.newPredictJob(req)
	}
	spec, err := parseJobSpec(req.Spec)
	if err != nil {
		return api.Job{}, err
	}
	job := api.Job{Name: req.Name, Spec: req.Spec, Cluster: spec.Cluster, Seed: spec.Seed, ResumeOf: req.ResumeOf}
	var missing error
	s.fsm.Read(func(st *State) {
		if req.ResumeOf != "" && st.Jobs[req.ResumeOf] == nil {
			missing = badField("resume_of", "no job %q", req.ResumeOf)
		}
		for _, d := range datasets(spec) {
			if missing != nil {
				return
			}
			sha, err := blobRef(d[1])
			switch {
			case err != nil:
				missing = badField(d[0], "%v", err)
			case sha != "" && st.Blobs[sha] == nil:
				missing = badField(d[0], "%s is not in the blob store: upload it first (bertnode submit does)", d[1])
			}
		}
		for _, u := range uploads(spec) {
			sha, err := uploadRef(u[1])
			switch {
			case missing != nil:
				return
			case err != nil:
				missing = badField(u[0], "%v", err)
			case sha != "" && st.Blobs[sha] == nil:
				missing = badField(u[0], "%s is not in the blob store: upload it first (bertnode submit does)", u[1])
			case sha != "":
				if job.Uploads == nil {
					job.Uploads = map[string]string{}
				}
				job.Uploads[u[0]] = sha
			}
		}
	})
	if missing != nil {
		return job, missing
	}
	for _, d := range datasets(spec) {
		ds := &api.Dataset{Path: d[1]}
		ds.Blob, _ = blobRef(d[1])
		if ds.Blob == "" {
			if spec.Cluster.Data != "shared" {
				return job, badField(d[0], "%q is a path on your machine: upload it (bertnode submit does) or set cluster.data: shared if every node sees it", d[1])
			}
			fi, err := os.Stat(d[1])
			if err == nil && !fi.Mode().IsRegular() {
				err = errors.New("not a regular file")
			}
			if err != nil {
				return job, badField(d[0], "shared path %s on the coordinator: %v", d[1], err)
			}
		}
		if d[0] == "train" {
			job.Train = ds
		} else {
			job.Eval = ds
		}
	}
	return job, nil
}
