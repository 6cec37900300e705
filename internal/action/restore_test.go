package action

import (
	"slices"
	"testing"

	"github.com/rollguard/rollguard/internal/release"
)

// A rollback restores in the reverse of apply order, one group of a rank at a time; objects a killed run
// left at the end of the record go to their place.
func TestRestoreGroups(t *testing.T) {
	st := func(apiVersion, kind, name string) release.ObjectState {
		return release.ObjectState{APIVersion: apiVersion, Kind: kind, Namespace: "shop", Name: name}
	}
	objs := []release.ObjectState{
		st("v1", "ConfigMap", "config"), st("v1", "Secret", "creds"), st("v1", "Service", "web"),
		st("apps/v1", "Deployment", "web"), st("apps/v1", "Deployment", "api"),
		st("v1", "ConfigMap", "inherited"), // only the killed run touched it
	}
	var got [][]string
	for _, g := range restoreGroups(objs) {
		var names []string
		for _, o := range g {
			names = append(names, o.Name)
		}
		got = append(got, names)
	}
	want := [][]string{{"api", "web"}, {"web"}, {"inherited", "creds", "config"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("restore groups %q, want %q", got, want)
	}
}
