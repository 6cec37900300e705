package release

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/kube"
)

// A record whose compressed form does not fit one Secret (a release of many objects, or of large
// ConfigMaps and Secrets, whose previous states it keeps) is split: the record's Secret holds the first
// chunk and names the others, each in a Secret of its own (PartSecretType) named after the record, a token
// unique to the write, and its index. The parts of a write are created before the record's Secret is
// written, and the parts it replaced are deleted after, so a reader never finds the record's Secret naming
// parts that were not written; a reader that finds a part gone (replaced meanwhile) reads the record again.
const (
	// PartSecretType marks a Secret holding a chunk of a split record.
	PartSecretType corev1.SecretType = "rollguard.dev/release-part.v1"
	// AnnotationParts, on a split record's Secret, is "TOKEN/N/SHA256": its N chunks (the first in the
	// record's Secret), the token naming the others, and the digest of the whole compressed record.
	AnnotationParts = "rollguard.dev/parts"
	// partKey holds a part's chunk.
	partKey = "part"
	// maxParts bounds a record to 16 Secrets (about 16 MiB compressed).
	maxParts = 16
	// orphanAge is how old an unreferenced part must be before a prune deletes it: a writer creates its
	// parts seconds before it writes the record that names them.
	orphanAge = 10 * time.Minute
)

// partName is the Secret holding chunk i (1-based among the others) of a record's write token.
func partName(id, token string, i int) string {
	return SecretName(id) + "." + token + "-" + strconv.Itoa(i)
}

// split turns a record's Secret whose data is too large into the Secret holding the first chunk and the
// parts holding the rest.
func split(sec *corev1.Secret, r *Record, body []byte) (*corev1.Secret, []*corev1.Secret, error) {
	n := (len(body) + maxSecretData - 1) / maxSecretData
	if n > maxParts {
		return nil, nil, tooLarge(r, len(body))
	}
	token := make([]byte, 4)
	if _, err := rand.Read(token); err != nil {
		return nil, nil, fmt.Errorf("encoding release record %s: %w", r.ID, err)
	}
	tok := hex.EncodeToString(token)
	sum := sha256.Sum256(body)
	sec.Annotations = map[string]string{AnnotationParts: tok + "/" + strconv.Itoa(n) + "/" + hex.EncodeToString(sum[:])}
	sec.Data = map[string][]byte{DataKey: body[:maxSecretData]}
	var parts []*corev1.Secret
	for i := 1; i < n; i++ {
		chunk := body[i*maxSecretData : min((i+1)*maxSecretData, len(body))]
		parts = append(parts, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name:      partName(r.ID, tok, i),
				Namespace: r.Namespace,
				Labels:    map[string]string{LabelManagedBy: ManagedBy, LabelApp: r.App},
			},
			Type: PartSecretType,
			Data: map[string][]byte{partKey: chunk},
		})
	}
	return sec, parts, nil
}

// createParts writes a record's parts before the record's Secret names them; on failure none is left.
func (s *Store) createParts(ctx context.Context, parts []*corev1.Secret) error {
	for i, p := range parts {
		_, err := s.c.Typed.CoreV1().Secrets(p.Namespace).Create(ctx, p, metav1.CreateOptions{FieldManager: kube.FieldManager})
		if err != nil {
			s.dropParts(ctx, parts[:i])
			return kube.Classify(err, "recording part of release record "+p.Name, s.c.Server)
		}
	}
	return nil
}

// dropParts deletes parts no record names (any more): best effort, a prune sweeps what is left.
func (s *Store) dropParts(ctx context.Context, parts []*corev1.Secret) {
	ctx = context.WithoutCancel(ctx)
	for _, p := range parts {
		_ = s.c.Typed.CoreV1().Secrets(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
	}
}

// dropReplaced deletes the parts of the version of record id that a write has just replaced.
func (s *Store) dropReplaced(ctx context.Context, namespace, id, annotation string) {
	tok, n, _, ok := parseParts(annotation)
	if !ok {
		return
	}
	var parts []*corev1.Secret
	for i := 1; i < n; i++ {
		parts = append(parts, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: partName(id, tok, i), Namespace: namespace}})
	}
	s.dropParts(ctx, parts)
}

func parseParts(annotation string) (token string, n int, sum string, ok bool) {
	f := strings.Split(annotation, "/")
	if len(f) != 3 {
		return "", 0, "", false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 1 || n > maxParts {
		return "", 0, "", false
	}
	return f[0], n, f[2], true
}

// errPartGone says a part the record's Secret names is gone: a writer replaced it since it was read.
var errPartGone = errors.New("a part of the record was replaced while it was read")

// joined is a record Secret's compressed data, with the parts it names read and checked.
func (s *Store) joined(ctx context.Context, sec *corev1.Secret, id string) ([]byte, error) {
	annotation, split := sec.Annotations[AnnotationParts]
	if !split {
		return sec.Data[DataKey], nil
	}
	tok, n, sum, ok := parseParts(annotation)
	if !ok {
		return nil, fmt.Errorf("reading release record %s/%s: bad %s annotation %q", sec.Namespace, sec.Name, AnnotationParts, annotation)
	}
	body := bytes.Clone(sec.Data[DataKey])
	for i := 1; i < n; i++ {
		p, err := s.c.Typed.CoreV1().Secrets(sec.Namespace).Get(ctx, partName(id, tok, i), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, errPartGone
		}
		if err != nil {
			return nil, kube.Classify(err, "reading release record "+id, s.c.Server)
		}
		body = append(body, p.Data[partKey]...)
	}
	got := sha256.Sum256(body)
	if hex.EncodeToString(got[:]) != sum {
		return nil, errPartGone // a part of another write: read again
	}
	return body, nil
}

// sweepParts deletes the app's parts that no record names and that are old: those a killed writer created
// without writing the record that would have named them. A writer's fresh parts are never taken.
func (s *Store) sweepParts(ctx context.Context, records, parts []corev1.Secret) error {
	named := map[string]bool{}
	for i := range records {
		tok, n, _, ok := parseParts(records[i].Annotations[AnnotationParts])
		id := strings.TrimPrefix(records[i].Name, NamePrefix)
		for j := 1; ok && j < n; j++ {
			named[partName(id, tok, j)] = true
		}
	}
	for _, p := range parts {
		if named[p.Name] || time.Since(p.CreationTimestamp.Time) < orphanAge {
			continue
		}
		err := s.c.Typed.CoreV1().Secrets(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return kube.Classify(err, "pruning part of release record "+p.Name, s.c.Server)
		}
	}
	return nil
}
