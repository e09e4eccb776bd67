package coordinator

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bertnode/bertnode/api"
)

// MaxEvents bounds each job's event log. Past it the oldest routine event (an eval,
// a checkpoint, a result, a confirmation) goes, so that a long job's generations,
// failures and outcome stay; the oldest event of any kind when none is routine.
const MaxEvents = 500

// routine are the kinds of events a long job has many of.
var routine = map[string]bool{"eval": true, "checkpoint": true, "result": true, "confirm": true, "collected": true}

// keepCheckpoints is how many checkpoint manifests a job keeps.
const keepCheckpoints = 5

// State is the replicated state: what every member's FSM holds after applying the
// same commands. Only apply changes it, and apply uses nothing but the command.
type State struct {
	// Index is the raft index of the last command applied.
	Index   uint64                 `json:"index"`
	NextJob int                    `json:"next_job"`
	Members map[string]*api.Member `json:"members"`
	Nodes   map[string]*api.Node   `json:"nodes"`
	Jobs    map[string]*api.Job    `json:"jobs"`
	Blobs   map[string]*Blob       `json:"blobs"`
	Events  map[string][]api.Event `json:"events"` // per job, the newest MaxEvents
	// Deleted maps the jobs bertnode delete removed to when they were submitted: nodes
	// remove their own files of exactly those jobs (a reset cluster reuses IDs).
	Deleted map[string]time.Time `json:"deleted"`
	// DeletedAt is when each of Deleted was deleted, in the commands' time: the leader
	// trims Deleted of those older than Timing.DeletedRetention (DeletedTrim).
	DeletedAt map[string]time.Time `json:"deleted_at"`
	// Topics maps what blocking queries watch ("job/ID", "assign/NODE", ...) to the
	// index of the command that last changed it.
	Topics map[string]uint64 `json:"topics"`
	// Outputs are predict jobs' units' output blobs, by job: unit i's sha256 in bytes
	// [32i, 32i+32), zero until it is done. They are kept apart from the job, whose
	// every read (listings, assignments) would otherwise ship them.
	Outputs map[string][]byte `json:"outputs,omitempty"`
}

// Blob is a stored file the members replicate among themselves. It stays listed while
// a job references it, or for a grace after Stored (see retention.go).
type Blob struct {
	Size    int64     `json:"size"`
	Holders []string  `json:"holders"` // member IDs, sorted
	Added   time.Time `json:"added"`
	// Stored is when it was last uploaded (listed, or uploaded again).
	Stored time.Time `json:"stored,omitzero"`
}

// NewState is the empty state.
func NewState() *State {
	return &State{
		Members: map[string]*api.Member{}, Nodes: map[string]*api.Node{}, Jobs: map[string]*api.Job{},
		Blobs: map[string]*Blob{}, Events: map[string][]api.Event{}, Topics: map[string]uint64{},
		Deleted: map[string]time.Time{}, DeletedAt: map[string]time.Time{}, Outputs: map[string][]byte{},
	}
}

// The topics blocking queries wait on.
func topicJob(id string) string    { return "job/" + id }    // anything about the job
func topicGen(id string) string    { return "gen/" + id }    // its generation, reconfig, state
func topicLogs(id string) string   { return "logs/" + id }   // its event log
func topicAssign(id string) string { return "assign/" + id } // which job a node is on
func topicNode(id string) string   { return "node/" + id }   // anything about the node
const topicJobs, topicNodes, topicMembers, topicBlobs, topicDeleted = "jobs", "nodes", "members", "blobs", "deleted"

func (s *State) touch(topics ...string) {
	for _, t := range topics {
		s.Topics[t] = s.Index
	}
}

// TopicIndex is the index of the last change to any of topics, at least 1 so that a
// blocking query with index 0 never waits.
func (s *State) TopicIndex(topics ...string) uint64 {
	idx := uint64(1)
	for _, t := range topics {
		idx = max(idx, s.Topics[t])
	}
	return idx
}

// Errors apply returns: the HTTP status travels with them to the client.
func errorf(status int, format string, args ...any) *api.Error {
	return &api.Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// superseded is the answer to a report for a generation the job has left.
func superseded(format string, args ...any) *api.Error {
	e := errorf(http.StatusConflict, format, args...)
	e.Superseded = true
	return e
}

func badField(field, format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

func (s *State) job(id string) (*api.Job, error) {
	j, ok := s.Jobs[id]
	if !ok {
		return nil, errorf(http.StatusNotFound, "no job %q", id)
	}
	return j, nil
}

// runningJob is job id, which must be running.
func (s *State) runningJob(id string) (*api.Job, error) {
	j, err := s.job(id)
	if err != nil {
		return nil, err
	}
	if j.State != api.Running || j.Gen == nil {
		return nil, errorf(http.StatusConflict, "job %s is %s", id, j.State)
	}
	return j, nil
}

// ringJob is job id, a running training job: predict jobs have no ring, steps or
// models, and their nodes report units.
func (s *State) ringJob(id string) (*api.Job, error) {
	j, err := s.runningJob(id)
	if err == nil && j.Kind == api.KindPredict {
		err = errorf(http.StatusConflict, "job %s is a predict job: its nodes report units", id)
	}
	return j, err
}

// member checks that node reports for the current generation of j, of which it is a
// member, and returns its rank.
func member(j *api.Job, node string, gen uint32) (int, error) {
	if gen != j.Gen.Gen {
		return -1, superseded("generation %d of job %s is over: it is at generation %d", gen, j.ID, j.Gen.Gen)
	}
	if j.Waiting != nil {
		return -1, superseded("generation %d of job %s is closed: it waits for nodes", gen, j.ID)
	}
	r := j.Gen.Rank(node)
	if r < 0 {
		return -1, errorf(http.StatusConflict, "node %s is not in generation %d of job %s", node, gen, j.ID)
	}
	return r, nil
}

// fromMember is running job id and the rank of node, which reports for generation
// gen: it must be the job's, and node in it.
func (s *State) fromMember(id, node string, gen uint32) (*api.Job, int, error) {
	j, err := s.runningJob(id)
	if err != nil {
		return nil, -1, err
	}
	rank, err := member(j, node, gen)
	return j, rank, err
}

func (s *State) event(j *api.Job, t time.Time, kind, node, format string, args ...any) {
	s.addEvent(j, api.Event{Time: t, Kind: kind, Node: node, Message: fmt.Sprintf(format, args...)})
}

// addEvent appends e to j's log, numbered and in j's current generation.
func (s *State) addEvent(j *api.Job, e api.Event) {
	ev := s.Events[j.ID]
	e.Seq = 1
	if len(ev) > 0 {
		e.Seq = ev[len(ev)-1].Seq + 1
	}
	if j.Gen != nil {
		e.Gen = j.Gen.Gen
	}
	ev = append(ev, e)
	if len(ev) > MaxEvents {
		i := slices.IndexFunc(ev, func(e api.Event) bool { return routine[e.Kind] })
		ev = slices.Delete(ev, max(i, 0), max(i, 0)+1)
	}
	s.Events[j.ID] = ev
	s.touch(topicLogs(j.ID))
}

// changedJob records a change of j; structural ones (generation, reconfiguration,
// state) also wake the watches of its nodes' assignments.
func (s *State) changedJob(j *api.Job, structural bool) {
	s.touch(topicJob(j.ID), topicJobs)
	if structural {
		s.touch(topicGen(j.ID))
	}
}

func (s *State) setNodeJob(n *api.Node, job string) {
	if n.Job != job {
		n.Job = job
		s.touch(topicNode(n.ID), topicNodes, topicAssign(n.ID))
	}
}

// release unassigns the nodes of j that are not in keep. leftOut marks them unproven:
// they failed, or went silent, or could not confirm, and may be dead while gossip still
// lists them.
func (s *State) release(j *api.Job, t time.Time, keep []string, leftOut bool) {
	for _, n := range s.Nodes {
		if n.Job == j.ID && !slices.Contains(keep, n.ID) {
			s.setNodeJob(n, "")
			if leftOut {
				n.Unproven, n.LeftOut = true, t
			}
		}
	}
}

// finish ends j in state st and releases its nodes.
func (s *State) finish(j *api.Job, t time.Time, st api.JobState, node, reason string) {
	j.State, j.Reason, j.Finished = st, reason, t
	j.Reconfig, j.Waiting = nil, nil
	s.release(j, t, nil, false)
	s.changedJob(j, true)
	msg := string(st)
	if reason != "" {
		msg += ": " + reason
	}
	s.event(j, t, string(st), node, "%s", msg)
}

// Apply applies one decoded command at raft index idx. The error, an *api.Error, is
// the command's answer to whoever proposed it; the state may still have changed
// (a checksum mismatch fails the job and answers an error).
func (s *State) Apply(idx uint64, c *Command) (any, error) {
	s.Index = idx
	a, ok := appliers[c.Type]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "unknown command type %q", c.Type)
	}
	return a.apply(s, c.Time, c.Body)
}

// applier decodes a command type's body and applies it. since is the coordinator
// protocol that added the type (protocol.go): an older FSM cannot apply it.
type applier struct {
	since int
	apply func(s *State, t time.Time, body []byte) (any, error)
}

// appliers are the command types, each with the protocol that added it. Those from
// before members recorded protocols are numbered in the order they came, 1 being the
// first FSM's.
var appliers = map[string]applier{
	CmdMemberJoin:     {1, on((*State).memberJoin)},
	CmdMemberRemove:   {1, on((*State).memberRemove)},
	CmdNodeRegister:   {1, on((*State).nodeRegister)},
	CmdHealth:         {1, on((*State).health)},
	CmdJobSubmit:      {1, onValue((*State).jobSubmit)},
	CmdDatasetPlanned: {1, on((*State).datasetPlanned)},
	CmdJobReason:      {1, on((*State).jobReason)},
	CmdOpenGeneration: {1, on((*State).openGeneration)},
	CmdBeginReconfig:  {1, on((*State).beginReconfig)},
	CmdWaitForNodes:   {1, on((*State).waitForNodes)},
	CmdFailure:        {1, on((*State).failure)},
	CmdProgress:       {1, on((*State).progress)},
	CmdCheckpoint:     {1, on((*State).checkpoint)},
	CmdResult:         {1, on((*State).result)},
	CmdDone:           {1, on((*State).done)},
	CmdCancel:         {1, on((*State).cancel)},
	CmdBlobStored:     {1, on((*State).blobStored)},
	CmdBlobsCollect:   {2, onValue((*State).blobsCollect)},
	CmdJobDelete:      {3, on((*State).deleteJob)},
	CmdDeletedTrim:    {4, onValue((*State).deletedTrim)},
	CmdNodeDrain:      {5, on((*State).nodeDrain)},
	CmdNodeRemove:     {6, on((*State).nodeRemove)},
	CmdLease:          {7, onValue((*State).lease)},
	CmdUnitDone:       {7, on((*State).unitDone)},
	CmdRenew:          {8, onValue((*State).renew)},
}

func on[T any](apply func(*State, time.Time, T) error) func(*State, time.Time, []byte) (any, error) {
	return onValue(func(s *State, t time.Time, b T) (any, error) { return nil, apply(s, t, b) })
}

func onValue[T, R any](apply func(*State, time.Time, T) (R, error)) func(*State, time.Time, []byte) (any, error) {
	return func(s *State, t time.Time, body []byte) (any, error) {
		var b T
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, errorf(http.StatusBadRequest, "command body: %v", err)
		}
		return apply(s, t, b)
	}
}

func (s *State) memberJoin(t time.Time, b api.JoinMember) error {
	switch {
	case b.ID == "":
		return badField("id", "empty")
	case b.RaftAddr == "":
		return badField("raft_addr", "empty")
	case b.APIAddr == "":
		return badField("api_addr", "empty")
	}
	m := s.Members[b.ID]
	if m == nil {
		m = &api.Member{ID: b.ID, Health: api.Alive}
		s.Members[b.ID] = m
	}
	m.RaftAddr, m.APIAddr, m.GossipAddr, m.Voter, m.Protocol = b.RaftAddr, b.APIAddr, b.GossipAddr, true, b.Protocol
	s.touch(topicMembers)
	return nil
}

func (s *State) memberRemove(_ time.Time, b MemberRemove) error {
	if _, ok := s.Members[b.ID]; !ok {
		return errorf(http.StatusNotFound, "no member %q", b.ID)
	}
	delete(s.Members, b.ID)
	for _, bl := range s.Blobs {
		bl.Holders = slices.DeleteFunc(bl.Holders, func(h string) bool { return h == b.ID })
	}
	s.touch(topicMembers, topicBlobs)
	return nil
}

func (s *State) nodeRegister(t time.Time, b api.RegisterNode) error {
	switch {
	case b.ID == "" || strings.ContainsAny(b.ID, "/ \t\n"):
		return badField("id", "%q is not a node ID", b.ID)
	case b.RingAddr == "":
		return badField("ring_addr", "empty")
	}
	n := s.Nodes[b.ID]
	if n == nil {
		n = &api.Node{ID: b.ID, Registered: t}
		s.Nodes[b.ID] = n
		s.touch(topicAssign(b.ID))
	}
	n.Name, n.RingAddr, n.HTTPAddr, n.Device = b.Name, b.RingAddr, b.HTTPAddr, b.Device
	// It just spoke to us: alive until gossip says otherwise.
	if n.Health != api.Alive {
		n.Health, n.HealthSince = api.Alive, t
	}
	if n.Unproven {
		n.Unproven, n.LeftOut = false, time.Time{}
		s.touch(topicAssign(b.ID))
	}
	s.touch(topicNode(b.ID), topicNodes)
	return nil
}

// nodeDrain turns a node's drain on or off; the leader's decide lets a drained node go
// from its job, and gives it no other.
func (s *State) nodeDrain(t time.Time, b NodeDrain) error {
	n := s.Nodes[b.Node]
	if n == nil {
		return errorf(http.StatusNotFound, "no node %q", b.Node)
	}
	if n.Drain == b.Drain {
		return nil
	}
	n.Drain = b.Drain
	s.touch(topicNode(n.ID), topicNodes)
	if j := s.Jobs[n.Job]; j != nil {
		if b.Drain {
			s.event(j, t, "drain", n.ID, "node %s draining: it leaves the job once the job can go on without it", n.ID)
		} else {
			s.event(j, t, "drain", n.ID, "node %s no longer draining", n.ID)
		}
	}
	return nil
}

// nodeRemove takes a node out of the state (docs/cluster.md, "Node GC"). It refuses a
// node gossip calls alive or suspect (its agent would register it again), one on a
// job, and one a running job still names in its generation or keeps for its next: the
// job's ring and the leader's decisions read those. A finished job keeps naming the
// nodes of its generations. The node, should it come back, registers as a new one.
func (s *State) nodeRemove(t time.Time, b NodeRemove) error {
	n := s.Nodes[b.Node]
	if n == nil {
		return errorf(http.StatusNotFound, "no node %q", b.Node)
	}
	if b.Before.After(t) {
		return errorf(http.StatusBadRequest, "before: %s is after the command's time %s", b.Before, t)
	}
	if err := s.unremovable(n); err != nil {
		return err
	}
	if !b.Before.IsZero() && !n.HealthSince.Before(b.Before) {
		return errorf(http.StatusConflict, "node %s is %s only since %s", n.ID, n.Health, n.HealthSince.UTC().Format(time.RFC3339))
	}
	delete(s.Nodes, n.ID)
	s.touch(topicNode(n.ID), topicNodes, topicAssign(n.ID))
	return nil
}

// unremovable says why node n cannot be removed; nil when it can.
func (s *State) unremovable(n *api.Node) error {
	switch {
	case n.Health == api.Alive || n.Health == api.Suspect:
		return errorf(http.StatusConflict, "node %s is %s in gossip: its agent would register it again (stop its bertnode join first)", n.ID, n.Health)
	case n.Job != "":
		return errorf(http.StatusConflict, "node %s is on job %s: cancel the job, or drain the node until it leaves", n.ID, n.Job)
	}
	for _, j := range sortedJobs(s) {
		switch {
		case j.Gen == nil:
		case slices.Contains(j.Waiting, n.ID):
			return errorf(http.StatusConflict, "node %s is kept for the next generation of job %s", n.ID, j.ID)
		case j.Gen.Rank(n.ID) >= 0:
			return errorf(http.StatusConflict, "node %s is in generation %d of job %s, which is %s", n.ID, j.Gen.Gen, j.ID, j.State)
		}
	}
	return nil
}

// reapable are the nodes, sorted, dead or left since before before that nodeRemove
// would take: what the leader's node GC removes.
func (s *State) reapable(before time.Time) []string {
	var out []string
	for _, id := range sortedKeys(s.Nodes) {
		n := s.Nodes[id]
		if (n.Health == api.Dead || n.Health == api.Left) && n.HealthSince.Before(before) && s.unremovable(n) == nil {
			out = append(out, id)
		}
	}
	return out
}

func (s *State) health(t time.Time, b HealthUpdates) error {
	for _, u := range b.Updates {
		if u.Member {
			if m := s.Members[u.ID]; m != nil && m.Health != u.Health {
				m.Health = u.Health
				s.touch(topicMembers)
			}
			continue
		}
		n := s.Nodes[u.ID]
		if n == nil || n.Health == u.Health {
			continue
		}
		n.Health, n.HealthSince = u.Health, t
		s.touch(topicNode(n.ID), topicNodes)
		if j := s.Jobs[n.Job]; j != nil {
			why := ""
			if u.Why != "" {
				why = " (" + u.Why + ")"
			}
			s.event(j, t, "health", n.ID, "%s is %s%s", n.ID, u.Health, why)
			if u.Health == api.Dead || u.Health == api.Left {
				s.returnUnits(j, t, n.ID, "is "+string(u.Health))
			}
		}
	}
	return nil
}

func (s *State) jobSubmit(t time.Time, b JobSubmit) (string, error) {
	s.NextJob++
	j := b.Job
	j.ID = "job-" + strconv.Itoa(s.NextJob)
	j.State, j.Reason, j.Submitted = api.Pending, "planning the data", t
	j.Gen, j.Reconfig, j.Waiting, j.Checkpoints, j.Results, j.Work = nil, nil, nil, nil, nil, nil
	j.Progress = api.Progress{}
	s.Jobs[j.ID] = &j
	s.changedJob(&j, true)
	name := ""
	if j.Name != "" {
		name = " (" + j.Name + ")"
	}
	s.event(&j, t, "submitted", "", "submitted%s: %d nodes (min %d)", name, j.Cluster.Nodes, j.Cluster.MinNodes)
	return j.ID, nil
}

func (s *State) datasetPlanned(t time.Time, b DatasetPlanned) error {
	j, err := s.job(b.Job)
	if err != nil {
		return err
	}
	if j.State != api.Pending {
		return errorf(http.StatusConflict, "job %s is %s", j.ID, j.State)
	}
	d := j.Train
	if b.Which == "eval" {
		d = j.Eval
	}
	if d == nil || (b.Which != "train" && b.Which != "eval") {
		return badField("which", "job %s has no %q dataset", j.ID, b.Which)
	}
	if b.Error != "" {
		d.Error = b.Error
		what := b.Which + " data"
		if j.Kind == api.KindPredict {
			what = "the input"
		}
		s.finish(j, t, api.Failed, "", fmt.Sprintf("planning %s %s: %s", what, d.Path, b.Error))
		return nil
	}
	if j.Kind == api.KindPredict {
		if b.Records == 0 {
			s.finish(j, t, api.Failed, "", fmt.Sprintf("the input %s has no records", d.Path))
			return nil
		}
		j.Work = api.NewWork(b.Records, j.Cluster.BlockRecords)
		s.Outputs[j.ID] = make([]byte, sha256.Size*j.Work.Units)
	}
	d.Plan, d.Records = b.Plan, b.Records
	if b.Which == "train" {
		j.Labels = b.Labels
	}
	if planned(j) { // j.Train may be nil when only the eval data is planned
		j.Reason = "waiting for nodes"
	}
	s.changedJob(j, true)
	s.event(j, t, "planned", "", "%s data planned: %d records, plan %s", b.Which, b.Records, short(b.Plan))
	return nil
}

func (s *State) jobReason(_ time.Time, b JobReason) error {
	j, err := s.job(b.Job)
	if err != nil {
		return err
	}
	if j.State.Done() {
		return errorf(http.StatusConflict, "job %s is %s", j.ID, j.State)
	}
	if j.Reason != b.Reason {
		j.Reason = b.Reason
		s.changedJob(j, true)
	}
	return nil
}

// planned says whether the leader has planned all of j's data.
func planned(j *api.Job) bool {
	return j.Train != nil && j.Train.Plan != "" && (j.Eval == nil || j.Eval.Plan != "")
}

func (s *State) openGeneration(t time.Time, b OpenGeneration) error {
	j, err := s.job(b.Job)
	if err != nil {
		return err
	}
	if j.State.Done() {
		return errorf(http.StatusConflict, "job %s is %s", j.ID, j.State)
	}
	if !planned(j) {
		return errorf(http.StatusConflict, "job %s: its data is not planned yet", j.ID)
	}
	cur := uint32(0)
	if j.Gen != nil {
		cur = j.Gen.Gen
	}
	if b.Gen != cur+1 {
		return errorf(http.StatusConflict, "job %s is at generation %d: cannot open %d", j.ID, cur, b.Gen)
	}
	if len(b.Members) == 0 || len(b.Members) > j.Cluster.Nodes {
		return errorf(http.StatusBadRequest, "job %s: %d members, want 1 to %d", j.ID, len(b.Members), j.Cluster.Nodes)
	}
	g := &api.Generation{Gen: b.Gen, Opened: t, Reason: b.Reason}
	if j.Gen != nil && !slices.ContainsFunc(j.Gen.Members, func(m api.RingMember) bool { return slices.Contains(b.Members, m.Node) }) {
		g.Restore = j.Results["checkpoint"].Blob // "" when the job has none yet
	}
	for i, id := range b.Members {
		n := s.Nodes[id]
		switch {
		case n == nil:
			return errorf(http.StatusConflict, "no node %q", id)
		case n.Job != "" && n.Job != j.ID:
			return errorf(http.StatusConflict, "node %s is on job %s", id, n.Job)
		case slices.Contains(b.Members[:i], id):
			return errorf(http.StatusBadRequest, "node %s is listed twice", id)
		}
		g.Members = append(g.Members, api.RingMember{Node: id, Addr: n.RingAddr})
	}
	s.release(j, t, b.Members, true)
	if j.Work != nil {
		var gone []string
		for _, u := range j.Work.Leases {
			if u.Node != "" && !slices.Contains(b.Members, u.Node) && !slices.Contains(gone, u.Node) {
				gone = append(gone, u.Node)
			}
		}
		for _, n := range gone {
			s.returnUnits(j, t, n, "left the job")
		}
	}
	for _, id := range b.Members {
		s.setNodeJob(s.Nodes[id], j.ID)
		s.Nodes[id].Unproven, s.Nodes[id].LeftOut = false, time.Time{}
	}
	var prevRestore string
	if j.Gen != nil {
		prevRestore = j.Gen.Restore
	}
	j.Gen, j.Reconfig, j.Waiting = g, nil, nil
	j.State, j.Reason = api.Running, ""
	if j.Started.IsZero() {
		j.Started = t
	}
	if b.Gen > 1 {
		j.Progress.Recoveries++
	}
	s.changedJob(j, true)
	s.event(j, t, "generation", "", "generation %d: %s (%s)", b.Gen, strings.Join(b.Members, ", "), b.Reason)
	s.dropUnreferenced(j, t, prevRestore, fmt.Sprintf("the checkpoint generation %d restored", b.Gen-1))
	return nil
}

func (s *State) beginReconfig(t time.Time, b BeginReconfig) error {
	j, err := s.ringJob(b.Job)
	if err != nil {
		return err
	}
	if b.Gen != j.Gen.Gen || j.Waiting != nil {
		return errorf(http.StatusConflict, "job %s: generation %d is not open (it is at %d)", j.ID, b.Gen, j.Gen.Gen)
	}
	if j.Reconfig != nil {
		return nil
	}
	s.openReconfig(j, t, b.Cause, nil)
	j.Reconfig.Growth = b.Growth
	return nil
}

func (s *State) openReconfig(j *api.Job, t time.Time, cause string, confirmed []string) {
	j.Reconfig = &api.Reconfig{
		Gen: j.Gen.Gen, Started: t, Deadline: t.Add(time.Duration(j.Cluster.RejoinWindow)),
		Confirmed: append([]string{}, confirmed...), Cause: cause,
	}
	s.changedJob(j, true)
	s.event(j, t, "reconfig", "", "reconfiguring generation %d: %s", j.Gen.Gen, cause)
}

func (s *State) waitForNodes(t time.Time, b WaitForNodes) error {
	j, err := s.ringJob(b.Job)
	if err != nil {
		return err
	}
	if b.Gen != j.Gen.Gen {
		return errorf(http.StatusConflict, "job %s is at generation %d, not %d", j.ID, j.Gen.Gen, b.Gen)
	}
	for _, id := range b.Keep {
		if n := s.Nodes[id]; n == nil || n.Job != j.ID {
			return errorf(http.StatusConflict, "node %s is not on job %s", id, j.ID)
		}
	}
	keep := append([]string{}, b.Keep...)
	if j.Reconfig == nil && slices.Equal(j.Waiting, keep) && j.Reason == b.Reason {
		return nil
	}
	s.release(j, t, keep, true)
	j.Reconfig, j.Waiting, j.Reason = nil, keep, b.Reason
	s.changedJob(j, true)
	s.event(j, t, "waiting", "", "%s (kept: %s)", b.Reason, strings.Join(keep, ", "))
	return nil
}

func (s *State) failure(t time.Time, b JobFailure) error {
	j, err := s.ringJob(b.Job)
	if err != nil {
		return err
	}
	r := b.Report
	if j.Waiting != nil && slices.Contains(j.Waiting, r.Node) && r.Gen == j.Gen.Gen {
		return nil // kept for the next generation already
	}
	if _, err := member(j, r.Node, r.Gen); err != nil {
		return err
	}
	if rc := j.Reconfig; rc != nil {
		if slices.Contains(rc.Confirmed, r.Node) {
			return nil
		}
		rc.Confirmed = append(rc.Confirmed, r.Node)
		noteSuspect(rc, r)
		if r.Error != "" {
			rc.Growth = false
		}
		s.changedJob(j, true)
		if r.Error != "" {
			s.event(j, t, "failure", r.Node, "%s failed at step %d: %s", r.Node, r.Applied, r.Error)
		} else {
			s.event(j, t, "confirm", r.Node, "%s confirmed at step %d", r.Node, r.Applied)
		}
		return nil
	}
	if r.Error == "" {
		return nil // nothing to confirm
	}
	s.event(j, t, "failure", r.Node, "%s failed at step %d: %s", r.Node, r.Applied, r.Error)
	s.openReconfig(j, t, r.Node+": "+r.Error, []string{r.Node})
	noteSuspect(j.Reconfig, r)
	return nil
}

func (s *State) progress(t time.Time, b JobProgress) error {
	r := b.Report
	if _, err := s.ringJob(b.Job); err != nil {
		return err
	}
	j, rank, err := s.fromMember(b.Job, r.Node, r.Gen)
	if err != nil {
		return err
	}
	if n := s.Nodes[r.Node]; n != nil {
		n.Stats = &api.NodeStats{Job: j.ID, Gen: r.Gen, Rank: rank, Step: r.Step,
			SamplesPerSec: r.NodeRate, StepMillis: r.StepMillis, Updated: t}
		s.touch(topicNode(n.ID), topicNodes)
	}
	p := &j.Progress
	if r.Step >= p.Step {
		p.Step, p.TotalSteps, p.Epoch, p.Loss, p.SamplesPerSec, p.Updated = r.Step, r.TotalSteps, r.Epoch, r.Loss, r.SamplesPerSec, t
		p.LossScale, p.Skipped = r.LossScale, r.Skipped
	}
	s.noteEval(j, t, r.Node, r.Eval, r.EvalStep)
	s.changedJob(j, false)
	return nil
}

// noteEval records an evaluation newer than the job's latest.
func (s *State) noteEval(j *api.Job, t time.Time, node string, m map[string]float64, step int64) {
	p := &j.Progress
	if len(m) > 0 && (p.Eval == nil || step > p.EvalStep) {
		p.Eval, p.EvalStep = m, step
		s.addEvent(j, api.Event{Time: t, Kind: "eval", Node: node, Step: step, Metrics: m,
			Message: fmt.Sprintf("eval at step %d: %s", step, formatMetrics(m))})
	}
}

func (s *State) checkpoint(t time.Time, b JobCheckpoint) error {
	r := b.Report
	if _, err := s.ringJob(b.Job); err != nil {
		return err
	}
	j, _, err := s.fromMember(b.Job, r.Node, r.Gen)
	if err != nil {
		return err
	}
	if r.Checksum == "" {
		return badField("checksum", "empty")
	}
	i := slices.IndexFunc(j.Checkpoints, func(c api.Checkpoint) bool { return c.Step == r.Step })
	if i < 0 {
		j.Checkpoints = append(j.Checkpoints, api.Checkpoint{Step: r.Step, Gen: r.Gen, Time: t})
		sort.Slice(j.Checkpoints, func(a, b int) bool { return j.Checkpoints[a].Step < j.Checkpoints[b].Step })
		i = slices.IndexFunc(j.Checkpoints, func(c api.Checkpoint) bool { return c.Step == r.Step })
	}
	c := &j.Checkpoints[i]
	if c.Gen != r.Gen || c.Checksums == nil {
		// A newer generation saves the step again: only its ranks count.
		c.Gen, c.Checksums, c.Time = r.Gen, map[string]string{}, t
	}
	c.Checksums[r.Node] = r.Checksum
	complete := len(c.Checksums) == j.Gen.Ranks()
	var mismatch string
	if complete {
		for _, m := range j.Gen.Members {
			if c.Checksums[m.Node] != c.Checksums[j.Gen.Members[0].Node] {
				mismatch = describeChecksums(j.Gen, c.Checksums)
				break
			}
		}
	}
	if len(j.Checkpoints) > keepCheckpoints {
		j.Checkpoints = slices.Clone(j.Checkpoints[len(j.Checkpoints)-keepCheckpoints:])
	}
	s.changedJob(j, false)
	if mismatch != "" {
		reason := fmt.Sprintf("checkpoint at step %d: the replicas differ: %s", r.Step, mismatch)
		s.finish(j, t, api.Failed, r.Node, reason)
		return errorf(http.StatusConflict, "job %s failed: %s", j.ID, reason)
	}
	if complete {
		s.event(j, t, "checkpoint", "", "checkpoint at step %d: %d replicas agree (%s)", r.Step, len(c.Checksums), short(r.Checksum))
	}
	return nil
}

func describeChecksums(g *api.Generation, sums map[string]string) string {
	parts := make([]string, len(g.Members))
	for i, m := range g.Members {
		parts[i] = m.Node + " " + sums[m.Node]
	}
	return strings.Join(parts, ", ")
}

func (s *State) result(t time.Time, b JobResult) error {
	j, err := s.ringJob(b.Job)
	if err != nil {
		return err
	}
	r := b.Report
	if n := s.Nodes[r.Node]; n == nil || n.Job != j.ID {
		return errorf(http.StatusConflict, "node %s is not on job %s", r.Node, j.ID)
	}
	switch r.Kind {
	case "final", "best", "checkpoint":
	default:
		return badField("kind", "%q: want final, best or checkpoint", r.Kind)
	}
	bl := s.Blobs[r.Blob]
	if bl == nil {
		return badField("blob", "%q is not in the blob store (upload it first)", r.Blob)
	}
	if j.Results == nil {
		j.Results = map[string]api.Artifact{}
	}
	prev := j.Results[r.Kind].Blob
	j.Results[r.Kind] = api.Artifact{Blob: r.Blob, Size: bl.Size, Step: r.Step, Node: r.Node, Metrics: r.Metrics}
	s.changedJob(j, false)
	s.event(j, t, "result", r.Node, "%s model at step %d: %s (%d bytes)", r.Kind, r.Step, short(r.Blob), bl.Size)
	s.dropUnreferenced(j, t, prev, "the previous "+r.Kind+" model")
	return nil
}

func (s *State) done(t time.Time, b JobDone) error {
	r := b.Report
	j, rank, err := s.fromMember(b.Job, r.Node, r.Gen)
	if err != nil {
		return err
	}
	if r.Error != "" {
		s.finish(j, t, api.Failed, r.Node, r.Node+": "+r.Error)
		return nil
	}
	if j.Kind == api.KindPredict {
		return errorf(http.StatusConflict, "job %s ends when its last unit is done", j.ID)
	}
	if rank != 0 {
		return errorf(http.StatusConflict, "only rank 0 ends job %s; %s is rank %d", j.ID, r.Node, rank)
	}
	j.Progress.Step = max(j.Progress.Step, r.Step)
	s.noteEval(j, t, r.Node, r.Eval, r.EvalStep)
	s.finish(j, t, api.Succeeded, r.Node, "")
	return nil
}

func (s *State) cancel(t time.Time, b JobCancel) error {
	j, err := s.job(b.Job)
	if err != nil {
		return err
	}
	if j.State.Done() {
		return errorf(http.StatusConflict, "job %s is already %s", j.ID, j.State)
	}
	s.finish(j, t, api.Cancelled, "", "cancelled")
	return nil
}

func (s *State) blobStored(t time.Time, b BlobStored) error {
	if !ValidSHA(b.SHA) {
		return badField("sha", "%q is not a hex sha256", b.SHA)
	}
	if b.Member == "" {
		return badField("member", "empty")
	}
	bl := s.Blobs[b.SHA]
	if bl == nil && !b.Upload {
		// A member's copy of a blob the state has dropped since (replaced, collected):
		// the copy began while the blob was listed and its record came late. Listing it
		// again would keep it on every disk for the blob grace; the member's sweep
		// removes the file instead.
		return nil
	}
	if bl == nil {
		bl = &Blob{Size: b.Size, Added: t, Stored: t}
		s.Blobs[b.SHA] = bl
	} else if bl.Size != b.Size {
		return errorf(http.StatusConflict, "blob %s has %d bytes, not %d", b.SHA, bl.Size, b.Size)
	}
	if b.Upload {
		bl.Stored = t
	}
	if !slices.Contains(bl.Holders, b.Member) {
		bl.Holders = append(bl.Holders, b.Member)
		slices.Sort(bl.Holders)
		s.touch(topicBlobs)
	}
	return nil
}

// ValidSHA says whether s is a lower-case hex sha256.
func ValidSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func formatMetrics(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.4g", k, m[k])
	}
	return strings.Join(parts, " ")
}

// noteSuspect records whom a member's ring error named.
func noteSuspect(rc *api.Reconfig, r api.FailureReport) {
	if r.Error == "" || r.Suspect == "" || r.Suspect == r.Node {
		return
	}
	if rc.Suspects == nil {
		rc.Suspects = map[string]string{}
	}
	rc.Suspects[r.Node] = r.Suspect
}
