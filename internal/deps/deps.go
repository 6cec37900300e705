//go:build tools

// Package deps pins modules the packages under construction will import, so parallel work never races on go.mod.
// Delete once every import below is used by real code.
package deps

import (
	_ "github.com/google/go-containerregistry/pkg/authn"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/v1/random"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/rollguard/rollguard/sandbox"
	_ "github.com/spf13/cobra"
	_ "k8s.io/cli-runtime/pkg/resource"
	_ "k8s.io/client-go/dynamic"
	_ "k8s.io/client-go/dynamic/dynamicinformer"
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/restmapper"
	_ "k8s.io/client-go/tools/watch"
	_ "k8s.io/kubectl/pkg/polymorphichelpers"
	_ "k8s.io/kubectl/pkg/util/deployment"
	_ "sigs.k8s.io/kustomize/api/krusty"
	_ "sigs.k8s.io/kustomize/kyaml/filesys"
	_ "sigs.k8s.io/yaml"
)
