package release

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollguard/rollguard/internal/kube"
	"github.com/rollguard/rollguard/internal/manifest"
)

// Identity is who deploys, for Record.DeployedBy: the cluster user the API server authenticated (asked
// with a SelfSubjectReview, so exec plugins, tokens and certificates all give the real name), and, in CI,
// who triggered the run: "system:serviceaccount:ci:deployer (GitHub Actions: alice)". When the server does
// not answer the review (an old cluster, or RBAC denies it), the kubeconfig's user name or the client
// certificate's common name stands in. Nothing here is a credential.
func Identity(ctx context.Context, c *kube.Client, ci manifest.CI) string {
	user := clusterUser(ctx, c)
	actor := ci.Actor
	switch {
	case actor == "" && ci.Provider == "":
		return user
	case actor == "":
		actor = ci.Provider
	case ci.Provider != "":
		actor = ci.Provider + ": " + actor
	}
	if user == "" {
		return actor
	}
	return user + " (" + actor + ")"
}

func clusterUser(ctx context.Context, c *kube.Client) string {
	if c.Typed != nil {
		rev, err := c.Typed.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err == nil && rev.Status.UserInfo.Username != "" {
			return rev.Status.UserInfo.Username
		}
	}
	cfg := c.Config
	if cfg == nil {
		return ""
	}
	if cfg.Username != "" {
		return cfg.Username
	}
	if cfg.Impersonate.UserName != "" {
		return cfg.Impersonate.UserName
	}
	data := cfg.CertData
	if len(data) == 0 && cfg.CertFile != "" {
		data, _ = os.ReadFile(cfg.CertFile)
	}
	if block, _ := pem.Decode(data); block != nil {
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			return cert.Subject.CommonName
		}
	}
	return ""
}
