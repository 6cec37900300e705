package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
)

// Storage format. The names and labels are part of rollguard's contract with the cluster: other tools and
// later rollguard versions find releases by them.
const (
	// SecretType marks a Secret as a rollguard release record.
	SecretType corev1.SecretType = "rollguard.dev/release.v1"
	// NamePrefix starts every record's Secret name: rollguard.release.<app>.v<N>.
	NamePrefix = "rollguard.release."
	// DataKey holds gzip(JSON(Record)), or its first chunk when the record is split (parts.go).
	DataKey = "release"

	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "rollguard"
	LabelApp       = "rollguard.dev/app"
	LabelRevision  = "rollguard.dev/revision"
	LabelOutcome   = "rollguard.dev/outcome"
)

// DefaultHistoryMax is how many records per app are kept when Store.HistoryMax is 0.
const DefaultHistoryMax = 20

// maxSecretData is the apiserver's limit on a Secret's data (1 MiB), less room for the key and the
// encoding so the error comes from us, naming the cause, rather than from the server.
const maxSecretData = 1<<20 - 4<<10

// Store keeps release records as Secrets in the cluster.
type Store struct {
	c *kube.Client
	// HistoryMax is how many records per app Create keeps (0: DefaultHistoryMax). The newest successful
	// record is never pruned, since it is what a later rollback returns to.
	HistoryMax int
	// now is the clock for CreatedAt/UpdatedAt.
	now func() time.Time
}

// NewStore returns a store that talks to the cluster through c.
func NewStore(c *kube.Client) *Store { return &Store{c: c, now: time.Now} }

// SecretName is the Secret that holds a record.
func SecretName(id string) string { return NamePrefix + id }

// ID is the record ID of an app's revision: "<app>.v<N>".
func ID(app string, revision int) string { return app + ".v" + strconv.Itoa(revision) }

// ValidateApp checks that app can name records and locks: a DNS subdomain short enough for a label value.
func ValidateApp(app string) error {
	if app == "" {
		return exitcode.BadInputf("the release has no app name: pass --app NAME")
	}
	if errs := validation.IsValidLabelValue(app); len(errs) > 0 || len(validation.IsDNS1123Subdomain(app)) > 0 {
		return exitcode.BadInputf("app name %q is not usable: use at most 63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit", app)
	}
	return nil
}

// Create stores a new record, assigning r.Revision and r.ID (the next revision of r.App in r.Namespace),
// then prunes the app's oldest records beyond HistoryMax. Two runs creating at once get distinct
// revisions: the Secret's name is the revision, and the one that loses the race to create it takes the
// next number.
func (s *Store) Create(ctx context.Context, r *Record) error {
	return s.CreateListed(ctx, r, nil)
}

// CreateListed is Create numbering from l, a listing of r's app taken under the app's lock since its last
// change (nil: list now), instead of listing the records again.
func (s *Store) CreateListed(ctx context.Context, r *Record, l *Listing) error {
	if err := ValidateApp(r.App); err != nil {
		return err
	}
	if r.Namespace == "" {
		return fmt.Errorf("creating a release record for %s: no namespace", r.App)
	}
	if r.Outcome == "" {
		r.Outcome = Applying
	}
	now := s.now().UTC()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	secrets := s.c.Typed.CoreV1().Secrets(r.Namespace)
	next := 0
	// One listing serves the next revision's number and the prune after the write: the app's lock keeps
	// other runs from creating records in between, and a record a racing writer adds is pruned next time.
	var records, parts []corev1.Secret
	for attempt := 0; ; attempt++ {
		if next == 0 || attempt%4 == 3 {
			// Re-list now and then: after many lost races someone may have jumped far ahead.
			var err error
			if l != nil && attempt == 0 && l.namespace == r.Namespace && l.app == r.App {
				records, parts = slices.Clone(l.records), slices.Clone(l.parts)
			} else if records, parts, err = s.listAll(ctx, r.Namespace, r.App); err != nil {
				return err
			}
			if latest := latestOf(records); latest >= next {
				next = latest + 1
			}
		}
		r.Revision, r.ID = next, ID(r.App, next)
		sec, parts, err := s.encode(r)
		if err != nil {
			return exitcode.New(exitcode.BadInput, err)
		}
		if err := s.createParts(ctx, parts); err != nil {
			return err
		}
		created, err := secrets.Create(ctx, sec, metav1.CreateOptions{FieldManager: kube.FieldManager})
		if err != nil {
			s.dropParts(ctx, parts)
		}
		if apierrors.IsAlreadyExists(err) && attempt < 50 {
			next++
			continue
		}
		if err != nil {
			return kube.Classify(err, "recording release "+r.ID, s.c.Server)
		}
		s.remember(r, created)
		records = append(records, *created)
		break
	}
	return s.prune(ctx, r.Revision, records, parts)
}

// Update writes r. On a conflict (another process updated the record in between, e.g. an approval) it
// re-reads the record, re-applies the fields the caller changed since it last read or wrote r, and writes
// again; r then holds the merged record. The outcome label follows r.Outcome.
func (s *Store) Update(ctx context.Context, r *Record) error {
	if r.ID == "" || r.Namespace == "" {
		return fmt.Errorf("updating a release record: it was never created (no ID)")
	}
	secrets := s.c.Typed.CoreV1().Secrets(r.Namespace)
	for attempt := 0; ; attempt++ {
		r.UpdatedAt = s.now().UTC()
		sec, parts, err := s.encode(r)
		if err != nil {
			return err
		}
		if err := s.createParts(ctx, parts); err != nil {
			return err
		}
		sec.ResourceVersion = r.stored
		var updated *corev1.Secret
		replaced := r.parts
		if r.stored == "" {
			// A record built by hand (not read from the store): write it as it is.
			updated, replaced, err = s.replace(ctx, sec)
		} else {
			updated, err = secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		}
		if err == nil {
			s.remember(r, updated)
			s.dropReplaced(ctx, r.Namespace, r.ID, replaced)
			return nil
		}
		s.dropParts(ctx, parts)
		if !apierrors.IsConflict(err) || attempt >= 10 {
			return kube.Classify(err, "updating release record "+r.ID, s.c.Server)
		}
		current, gerr := s.Get(ctx, r.Namespace, r.ID)
		if gerr != nil {
			return gerr
		}
		if err := rebase(r, current); err != nil {
			return fmt.Errorf("updating release record %s: %w", r.ID, err)
		}
	}
}

// replace overwrites a record regardless of its version; it returns the parts annotation of the version it
// replaced.
func (s *Store) replace(ctx context.Context, sec *corev1.Secret) (*corev1.Secret, string, error) {
	secrets := s.c.Typed.CoreV1().Secrets(sec.Namespace)
	cur, err := secrets.Get(ctx, sec.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := secrets.Create(ctx, sec, metav1.CreateOptions{FieldManager: kube.FieldManager})
		return created, "", err
	}
	if err != nil {
		return nil, "", err
	}
	sec.ResourceVersion = cur.ResourceVersion
	updated, err := secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: kube.FieldManager})
	return updated, cur.Annotations[AnnotationParts], err
}

// Modify reads a record, lets fn change it and writes it back, retrying on conflicts: the way for a second
// process (an approval, an undo) to change a record another run may be writing.
func (s *Store) Modify(ctx context.Context, namespace, id string, fn func(*Record) error) (*Record, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.Get(ctx, namespace, id)
		if err != nil {
			return nil, err
		}
		if err := fn(r); err != nil {
			return nil, err
		}
		r.UpdatedAt = s.now().UTC()
		sec, parts, err := s.encode(r)
		if err != nil {
			return nil, err
		}
		if err := s.createParts(ctx, parts); err != nil {
			return nil, err
		}
		sec.ResourceVersion = r.stored
		replaced := r.parts
		updated, err := s.c.Typed.CoreV1().Secrets(namespace).Update(ctx, sec, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		if err != nil {
			s.dropParts(ctx, parts)
		}
		if apierrors.IsConflict(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return nil, kube.Classify(err, "updating release record "+id, s.c.Server)
		}
		s.remember(r, updated)
		s.dropReplaced(ctx, namespace, id, replaced)
		return r, nil
	}
}

// prune deletes the app's oldest records beyond HistoryMax, never the one just created (keep), any
// unfinished one, or the newest successful one.
// secs and parts are the app's record and part Secrets as listed (listAll), the one just created included.
func (s *Store) prune(ctx context.Context, keep int, secs, parts []corev1.Secret) error {
	limit := s.HistoryMax
	if limit <= 0 {
		limit = DefaultHistoryMax
	}
	if err := s.sweepParts(ctx, secs, parts); err != nil || len(secs) <= limit {
		return err
	}
	sort.Slice(secs, func(i, j int) bool { return revisionOf(&secs[i]) > revisionOf(&secs[j]) })
	newestOK := 0
	for i := range secs {
		if Outcome(secs[i].Labels[LabelOutcome]) == Succeeded {
			newestOK = revisionOf(&secs[i])
			break
		}
	}
	excess := len(secs) - limit
	for i := len(secs) - 1; i >= 0 && excess > 0; i-- {
		rev := revisionOf(&secs[i])
		if rev == keep || rev == newestOK || Outcome(secs[i].Labels[LabelOutcome]).Unfinished() {
			continue
		}
		err := s.c.Typed.CoreV1().Secrets(secs[i].Namespace).Delete(ctx, secs[i].Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &secs[i].UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return kube.Classify(err, "pruning old release record "+secs[i].Name, s.c.Server)
		}
		s.dropReplaced(ctx, secs[i].Namespace, strings.TrimPrefix(secs[i].Name, NamePrefix), secs[i].Annotations[AnnotationParts])
		excess--
	}
	return nil
}

// encode builds the Secret for a record, and the parts holding what does not fit in it (parts.go).
func (s *Store) encode(r *Record) (*corev1.Secret, []*corev1.Secret, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding release record %s: %w", r.ID, err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(body); err != nil {
		return nil, nil, fmt.Errorf("compressing release record %s: %w", r.ID, err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("compressing release record %s: %w", r.ID, err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      SecretName(r.ID),
			Namespace: r.Namespace,
			Labels: map[string]string{
				LabelManagedBy: ManagedBy,
				LabelApp:       r.App,
				LabelRevision:  strconv.Itoa(r.Revision),
				LabelOutcome:   string(r.Outcome),
			},
		},
		Type: SecretType,
		Data: map[string][]byte{DataKey: buf.Bytes()},
	}
	if buf.Len() > maxSecretData {
		return split(sec, r, buf.Bytes())
	}
	return sec, nil, nil
}

// tooLarge names the biggest previous states, which are what make a record large.
func tooLarge(r *Record, size int) error {
	type big struct {
		ref  string
		size int
	}
	var bigs []big
	for _, o := range r.Objects {
		if o.Previous != nil {
			b, _ := json.Marshal(o.Previous.Object)
			bigs = append(bigs, big{o.Ref(), len(b)})
		}
	}
	sort.Slice(bigs, func(i, j int) bool { return bigs[i].size > bigs[j].size })
	var names []string
	for i := 0; i < len(bigs) && i < 3; i++ {
		names = append(names, fmt.Sprintf("%s %d KiB", bigs[i].ref, bigs[i].size>>10))
	}
	detail := ""
	if len(names) > 0 {
		detail = " (largest previous states: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Errorf("release record %s is %d KiB compressed, more than the %d Secrets of 1 MiB a record may take%s: split the release into smaller ones, or move large data out of ConfigMaps and Secrets", r.ID, size>>10, maxParts, detail)
}

func (s *Store) decode(ctx context.Context, sec *corev1.Secret) (*Record, error) {
	data, err := s.joined(ctx, sec, strings.TrimPrefix(sec.Name, NamePrefix))
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading release record %s/%s: not a rollguard record: %w", sec.Namespace, sec.Name, err)
	}
	body, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading release record %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	r := &Record{}
	if err := json.Unmarshal(body, r); err != nil {
		return nil, fmt.Errorf("reading release record %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	r.stored, r.base, r.parts = sec.ResourceVersion, body, sec.Annotations[AnnotationParts]
	return r, nil
}

// remember notes the version just written, and the record as written, for the next Update.
func (s *Store) remember(r *Record, sec *corev1.Secret) {
	r.stored, r.parts = sec.ResourceVersion, sec.Annotations[AnnotationParts]
	r.base, _ = json.Marshal(r)
}

// rebase turns r into current plus the top-level fields r changed since r.base: a three-way merge at the
// granularity of Record's fields, so a concurrent writer's change to another field (an approval decision
// while this run records its outcome) is kept. Where both changed the same field, r wins.
func rebase(r *Record, current *Record) error {
	var base, mine, theirs map[string]json.RawMessage
	if err := json.Unmarshal(r.base, &base); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &mine); err != nil {
		return err
	}
	tb, err := json.Marshal(current)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(tb, &theirs); err != nil {
		return err
	}
	for k, v := range mine {
		if !bytes.Equal(v, base[k]) {
			theirs[k] = v
		}
	}
	for k := range base {
		if _, ok := mine[k]; !ok {
			delete(theirs, k) // cleared by us (omitempty)
		}
	}
	merged, err := json.Marshal(theirs)
	if err != nil {
		return err
	}
	out := Record{}
	if err := json.Unmarshal(merged, &out); err != nil {
		return err
	}
	out.stored, out.base, out.parts = current.stored, current.base, current.parts
	*r = out
	return nil
}

// Capture cleans a live object for ObjectState.Previous: it keeps what restoring the object needs (its
// spec or data, labels, annotations, owner references) and drops what the server owns (status, uid,
// resourceVersion, managedFields, timestamps, generation) and the Deployment revision annotation, which
// a restore must not carry back (WorkloadState keeps the revision as data). A nil object gives nil.
func Capture(live *unstructured.Unstructured) *unstructured.Unstructured {
	if live == nil {
		return nil
	}
	out := live.DeepCopy()
	delete(out.Object, "status")
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(out.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(out.Object, "metadata", "annotations", "deployment.kubernetes.io/revision")
	if a, ok, _ := unstructured.NestedMap(out.Object, "metadata", "annotations"); ok && len(a) == 0 {
		unstructured.RemoveNestedField(out.Object, "metadata", "annotations")
	}
	return out
}

// NotFoundError says a record does not exist. Get returns it wrapped in an exit code 3 error; find it with
// errors.As.
type NotFoundError struct{ ID, Namespace string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("release %s not found in namespace %q: rollguard history --app APP lists the releases", e.ID, e.Namespace)
}
