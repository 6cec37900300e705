package release

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/kube"
)

// Reading records: one by ID, an app's list, and the newest of an app's records that match (only that one
// is decoded, since a large release's records are large).

// Get reads one record by ID ("web.v3").
func (s *Store) Get(ctx context.Context, namespace, id string) (*Record, error) {
	for attempt := 0; ; attempt++ {
		sec, err := s.c.Typed.CoreV1().Secrets(namespace).Get(ctx, SecretName(id), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, exitcode.New(exitcode.BadInput, &NotFoundError{ID: id, Namespace: namespace})
		}
		if err != nil {
			return nil, kube.Classify(err, "reading release record "+id, s.c.Server)
		}
		r, err := s.decode(ctx, sec)
		if errors.Is(err, errPartGone) && attempt < 5 {
			continue // written again while we read it
		}
		return r, err
	}
}

// decodeFresh decodes a listed record, reading it again when it was written since it was listed.
func (s *Store) decodeFresh(ctx context.Context, sec *corev1.Secret) (*Record, error) {
	r, err := s.decode(ctx, sec)
	if errors.Is(err, errPartGone) {
		return s.Get(ctx, sec.Namespace, strings.TrimPrefix(sec.Name, NamePrefix))
	}
	return r, err
}

// List returns the app's records in namespace, newest first; app "" lists every app's records (ordered
// by creation time, newest first).
func (s *Store) List(ctx context.Context, namespace, app string) ([]*Record, error) {
	secs, err := s.list(ctx, namespace, app)
	if err != nil {
		return nil, err
	}
	out := make([]*Record, 0, len(secs))
	for i := range secs {
		r, err := s.decodeFresh(ctx, &secs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].App == out[j].App {
			return out[i].Revision > out[j].Revision
		}
		return out[i].CreatedAt.After(out[j].CreatedAt)
	})
	return out, nil
}

// Latest returns the app's newest record, or nil, nil when it has none.
func (s *Store) Latest(ctx context.Context, namespace, app string) (*Record, error) {
	return s.newest(ctx, namespace, app, func(*corev1.Secret) bool { return true })
}

// LastSucceeded returns the app's newest succeeded record other than except (an ID), or nil, nil. Only that
// record is read: a large release's records are large.
func (s *Store) LastSucceeded(ctx context.Context, namespace, app, except string) (*Record, error) {
	return s.newest(ctx, namespace, app, func(sec *corev1.Secret) bool {
		return Outcome(sec.Labels[LabelOutcome]) == Succeeded && sec.Name != SecretName(except)
	})
}

// Unfinished returns the app's newest record whose outcome is applying, tracking or rolling_back, or
// nil, nil. Found while holding the app's lock, such a record belongs to a run that was killed.
func (s *Store) Unfinished(ctx context.Context, namespace, app string) (*Record, error) {
	return s.newest(ctx, namespace, app, func(sec *corev1.Secret) bool {
		return Outcome(sec.Labels[LabelOutcome]).Unfinished()
	})
}

// Listing is an app's record Secrets as one list read them. A run holding the app's lock reads its latest
// record and creates the next from one listing (Latest, then Create with it): every list is a consistent
// read, which waits up to a tenth of a second for the API server's cache on a busy cluster.
type Listing struct {
	store          *Store
	namespace, app string
	records, parts []corev1.Secret
}

// ListApp lists the app's records once, for Listing.Latest and Create.
func (s *Store) ListApp(ctx context.Context, namespace, app string) (*Listing, error) {
	records, parts, err := s.listAll(ctx, namespace, app)
	if err != nil {
		return nil, err
	}
	return &Listing{store: s, namespace: namespace, app: app, records: records, parts: parts}, nil
}

// Latest is Store.Latest as of the listing.
func (l *Listing) Latest(ctx context.Context) (*Record, error) {
	return l.store.newestOf(ctx, l.records, func(*corev1.Secret) bool { return true })
}

// newest reads the app's record of the highest revision among those whose Secret (its labels) matches, or
// returns nil, nil; only that record is decoded.
func (s *Store) newest(ctx context.Context, namespace, app string, match func(*corev1.Secret) bool) (*Record, error) {
	secs, err := s.list(ctx, namespace, app)
	if err != nil {
		return nil, err
	}
	return s.newestOf(ctx, secs, match)
}

func (s *Store) newestOf(ctx context.Context, secs []corev1.Secret, match func(*corev1.Secret) bool) (*Record, error) {
	var newest *corev1.Secret
	for i := range secs {
		if match(&secs[i]) && (newest == nil || revisionOf(&secs[i]) > revisionOf(newest)) {
			newest = &secs[i]
		}
	}
	if newest == nil {
		return nil, nil
	}
	return s.decodeFresh(ctx, newest)
}

func (s *Store) list(ctx context.Context, namespace, app string) ([]corev1.Secret, error) {
	records, _, err := s.listAll(ctx, namespace, app)
	return records, err
}

// listAll lists the app's record Secrets and the parts of split records (parts.go).
func (s *Store) listAll(ctx context.Context, namespace, app string) (records, parts []corev1.Secret, err error) {
	sel := labels.Set{LabelManagedBy: ManagedBy}
	if app != "" {
		sel[LabelApp] = app
	}
	doing := "listing release records"
	if app != "" {
		doing += " of " + app
	}
	list, err := s.c.Typed.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, nil, kube.Classify(err, doing, s.c.Server)
	}
	for _, sec := range list.Items {
		// Only our own types: a user's Secret that happens to carry the labels is not a record.
		switch {
		case sec.Type == SecretType && strings.HasPrefix(sec.Name, NamePrefix):
			records = append(records, sec)
		case sec.Type == PartSecretType && strings.HasPrefix(sec.Name, NamePrefix):
			parts = append(parts, sec)
		}
	}
	return records, parts, nil
}

// latestOf is the highest revision among records, 0 when there are none.
func latestOf(records []corev1.Secret) int {
	latest := 0
	for i := range records {
		latest = max(latest, revisionOf(&records[i]))
	}
	return latest
}

func revisionOf(sec *corev1.Secret) int {
	n, _ := strconv.Atoi(sec.Labels[LabelRevision])
	return n
}
