package revision_test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rollguard/rollguard/internal/revision"
)

func owned(uid types.UID, name string) metav1.ObjectMeta {
	yes := true
	return metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{UID: uid, Controller: &yes, Name: "owner"}}}
}

func replicaSet(uid types.UID, name, rev, history, hash, image string) appsv1.ReplicaSet {
	rs := appsv1.ReplicaSet{ObjectMeta: owned(uid, name)}
	rs.Annotations = map[string]string{revision.Annotation: rev}
	if history != "" {
		rs.Annotations[revision.HistoryAnnotation] = history
	}
	rs.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash}
	rs.Spec.Template.Labels = map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: hash}
	rs.Spec.Template.Spec.Containers = []corev1.Container{{Name: "web", Image: image}}
	return rs
}

// A Deployment's revisions are the ReplicaSets it controls, oldest first, with the numbers a rollback
// renumbered them from, and templates comparable to the Deployment's own (no hash label).
func TestOfReplicaSets(t *testing.T) {
	rss := []appsv1.ReplicaSet{
		replicaSet("d1", "web-c", "4", "1,2", "hc", "web:1"),
		replicaSet("d1", "web-b", "3", "", "hb", "web:2"),
		replicaSet("other", "web-x", "9", "", "hx", "web:9"),
	}
	revs := revision.OfReplicaSets("d1", rss)
	if len(revs) != 2 || revs[0].Number != 3 || revs[1].Number != 4 {
		t.Fatalf("revisions %+v, want 3 and 4, oldest first, without the ReplicaSet of another owner", revs)
	}
	if !slices.Equal(revs[1].History, []int64{1, 2}) || revs[1].Hash != "hc" || !slices.Equal(revs[1].Images(), []string{"web:1"}) {
		t.Errorf("revision 4 = %+v", revs[1])
	}
	if _, ok := revs[1].Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		t.Error("the template keeps the ReplicaSet's hash label")
	}
	if _, ok := rss[0].Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; !ok {
		t.Error("reading the revisions changed the ReplicaSet")
	}

	w := &revision.Workload{Kind: "Deployment", Revisions: revs, Current: 4}
	if r, ok := w.WasNumbered(2); !ok || r.Number != 4 {
		t.Errorf("WasNumbered(2) = %+v, %v; want revision 4, renumbered from 2", r, ok)
	}
	if r, ok := w.WasNumbered(3); !ok || r.Number != 3 {
		t.Errorf("WasNumbered(3) = %+v, %v", r, ok)
	}
	if _, ok := w.WasNumbered(7); ok {
		t.Error("WasNumbered(7) found a revision that never was")
	}
	if r, ok := w.Before(nil); !ok || r.Number != 3 {
		t.Errorf("Before = %+v, %v; want 3", r, ok)
	}
	if _, ok := w.Before(func(r revision.Revision) bool { return r.Images()[0] == "web:1" }); ok {
		t.Error("Before found the current revision")
	}
}

// A StatefulSet's revision is known by its ControllerRevision's name (status.updateRevision names it), a
// DaemonSet's by its controller-revision-hash; the template is read from the revision's data.
func TestOfControllerRevisions(t *testing.T) {
	data := func(image string) runtime.RawExtension {
		return runtime.RawExtension{Raw: []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"` + image + `"}]},"$patch":"replace"}}}`)}
	}
	crs := []appsv1.ControllerRevision{
		{ObjectMeta: owned("s1", "db-7f"), Revision: 2, Data: data("db:2")},
		{ObjectMeta: owned("s1", "db-5c"), Revision: 1, Data: data("db:1")},
		{ObjectMeta: owned("s1", "db-bad"), Revision: 3, Data: runtime.RawExtension{Raw: []byte("{")}},
	}
	for i := range crs {
		crs[i].Labels = map[string]string{appsv1.ControllerRevisionHashLabelKey: "h" + crs[i].Name}
	}
	sts := revision.OfControllerRevisions("StatefulSet", "s1", crs)
	if len(sts) != 3 || sts[0].Hash != "db-5c" || sts[1].Hash != "db-7f" || !slices.Equal(sts[1].Images(), []string{"db:2"}) {
		t.Fatalf("StatefulSet revisions %+v", sts)
	}
	if len(sts[2].Images()) != 0 {
		t.Errorf("an unreadable revision has images %v", sts[2].Images())
	}
	ds := revision.OfControllerRevisions("DaemonSet", "s1", crs)
	if ds[0].Hash != "hdb-5c" {
		t.Errorf("DaemonSet revision hash %q, want the controller-revision-hash label", ds[0].Hash)
	}
	if got := revision.OfControllerRevisions("DaemonSet", "other", crs); len(got) != 0 {
		t.Errorf("revisions of another owner: %+v", got)
	}
}
