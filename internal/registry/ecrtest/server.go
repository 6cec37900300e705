// Package ecrtest is a protocol test double of the Amazon ECR API, for tests only.
//
// No ECR emulator can be installed from the package sources this project uses, so the tests start this
// small endpoint on loopback and point the AWS SDK at it with AWS_ENDPOINT_URL_ECR. It is not a mock of
// rollguard's code: it speaks the wire protocol the real SDK speaks (AWS JSON 1.1: POST /, Content-Type
// application/x-amz-json-1.1, X-Amz-Target AmazonEC2ContainerRegistry_V20150921.<Operation>, errors as
// {"__type", "message"} with X-Amzn-ErrorType) and holds the repositories' state, so a delete is seen by later
// calls. It follows these pages of the Amazon ECR API Reference
// (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/):
//
//   - API_DescribeRepositories.html
//   - API_DescribeImages.html (maxResults 1..1000, default 100, nextToken; filter.tagStatus TAGGED|UNTAGGED|ANY;
//     imageIds, which cannot be combined with nextToken/maxResults; imagePushedAt as epoch seconds)
//   - API_BatchDeleteImage.html (at most 100 imageIds; deleting by digest drops every tag; deleting by tag drops
//     that tag and the image when it was the last; per-image failures with failureCode and failureReason)
//   - API_BatchGetImage.html (manifests by imageIds, at most 100; ImageNotFound failures)
//   - API_GetLifecyclePolicy.html, API_PutLifecyclePolicy.html (LifecyclePolicyNotFoundException;
//     lifecyclePolicyText of 100..30720 characters)
//   - CommonErrors.html (UnrecognizedClientException for an unknown access key) and
//     https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-push.html for tags moving to a new push.
//
// Signatures are not verified; the access key ID in the SigV4 Authorization header is, so a test can present
// credentials AWS would refuse.
package ecrtest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const targetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// Server is one ECR registry (one account, one region) on loopback.
type Server struct {
	URL       string
	Account   string
	Region    string
	AccessKey string

	mu    sync.Mutex
	repos map[string]*repository
	// refuse makes BatchDeleteImage fail for a digest with this failure code.
	refuse map[string]string
	calls  []string
	seq    int
}

type repository struct {
	name    string
	created time.Time
	images  []*Image
	policy  string
}

// Image is one image as ECR stores it: a manifest digest, its tags, when it was pushed.
type Image struct {
	Digest    string
	Tags      []string
	Pushed    time.Time
	MediaType string
	Size      int64
	// Manifest is the manifest body (an index's lists its platform images).
	Manifest string
}

// Start serves the double on a loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Account: "123456789012", Region: "eu-west-1", AccessKey: "AKIDROLLGUARDTEST",
		repos: map[string]*repository{}, refuse: map[string]string{}}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Host is the registry host name ECR would give this account and region.
func (s *Server) Host() string {
	return fmt.Sprintf("%s.dkr.ecr.%s.amazonaws.com", s.Account, s.Region)
}

// Env points the AWS SDK's standard settings at the double, with credentials it accepts, and isolates the
// test from the machine's own AWS configuration.
func (s *Server) Env(t testing.TB) {
	t.Helper()
	for _, kv := range s.EnvList(t.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// EnvList is Env as KEY=VALUE pairs for a child process (the rollguard binary); dir holds the empty AWS
// config and credentials files.
func (s *Server) EnvList(dir string) []string {
	return []string{
		"AWS_ENDPOINT_URL_ECR=" + s.URL,
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=test-secret-never-printed",
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE=" + dir + "/credentials",
		"AWS_EC2_METADATA_DISABLED=true",
		// The SDK's default of 3 attempts, as users run it, and not 1: the SDK retries a connection that
		// net/http closes under a response still being read (its writeLoop closes the connection when the
		// request body's final read fails after the SDK closed that body on the early response;
		// aws-sdk-go-v2 #2737 and #2949). With one attempt, about 1 listing in 100 failed here.
		"AWS_MAX_ATTEMPTS=3",
	}
}

// CreateRepository adds an empty repository.
func (s *Server) CreateRepository(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[name] = &repository{name: name, created: time.Now().UTC()}
}

// Push stores an image pushed at the given time under tags; as on ECR, a tag already on another image moves
// to this one, leaving that image untagged when it was its last tag. It returns the image's digest.
func (s *Server) Push(repo string, pushed time.Time, tags ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%v", repo, s.seq, tags))))
	r := s.repos[repo]
	for _, img := range r.images {
		img.Tags = slices.DeleteFunc(img.Tags, func(t string) bool { return slices.Contains(tags, t) })
	}
	r.images = append(r.images, &Image{Digest: digest, Tags: slices.Clone(tags), Pushed: pushed.UTC(),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(1000 + s.seq)})
	return digest
}

// PushIndex stores a multi-platform image: platform images (untagged, as ECR lists them) and an OCI image
// index referencing them under tags. It returns the index digest and the platform digests.
func (s *Server) PushIndex(repo string, pushed time.Time, platforms int, tags ...string) (string, []string) {
	var kids []string
	var entries []string
	for range platforms {
		d := s.Push(repo, pushed.Add(-time.Second)) // platform images are pushed just before their index
		kids = append(kids, d)
		entries = append(entries, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1000}`, d))
	}
	idx := s.Push(repo, pushed, tags...)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, img := range s.repos[repo].images {
		if img.Digest == idx {
			img.MediaType = "application/vnd.oci.image.index.v1+json"
			img.Manifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + strings.Join(entries, ",") + `]}`
		}
	}
	return idx, kids
}

// Tag points tag at an existing image (as pushing the same manifest under a new tag does), moving it from
// any other image.
func (s *Server) Tag(repo, digest, tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, img := range s.repos[repo].images {
		img.Tags = slices.DeleteFunc(img.Tags, func(t string) bool { return t == tag })
		if img.Digest == digest {
			img.Tags = append(img.Tags, tag)
		}
	}
}

// Refuse makes BatchDeleteImage report a failure with this code for the digest (e.g. ImageReferencedByManifestList).
func (s *Server) Refuse(digest, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse[digest] = code
}

// Images returns a copy of the repository's images, in push order.
func (s *Server) Images(repo string) []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Image
	for _, img := range s.repos[repo].images {
		c := *img
		c.Tags = slices.Clone(img.Tags)
		out = append(out, c)
	}
	return out
}

// Policy returns the repository's lifecycle policy text ("" when none).
func (s *Server) Policy(repo string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repos[repo].policy
}

// SetPolicy sets the repository's lifecycle policy text directly.
func (s *Server) SetPolicy(repo, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[repo].policy = text
}

// Calls returns the operations called so far, in order; an attempt the SDK retried counts once.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

type apiError struct {
	status int
	typ    string
	msg    string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	var out any
	var aerr *apiError
	switch {
	case r.Method != http.MethodPost || !ok:
		aerr = &apiError{400, "UnknownOperationException", "expected POST with X-Amz-Target " + targetPrefix + "<Operation>"}
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		aerr = &apiError{400, "SerializationException", "Content-Type must be application/x-amz-json-1.1"}
	case !strings.Contains(r.Header.Get("Authorization"), "Credential="+s.AccessKey+"/"):
		aerr = &apiError{400, "UnrecognizedClientException", "The security token included in the request is invalid."}
	default:
		var in map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			aerr = &apiError{400, "SerializationException", err.Error()}
			break
		}
		s.mu.Lock()
		// A call is counted once however often the SDK sends it: the SDK numbers its attempts in the
		// amz-sdk-request header ("attempt=2; max=3"), and tests count the calls rollguard makes.
		if strings.HasPrefix(r.Header.Get("amz-sdk-request"), "attempt=1;") || r.Header.Get("amz-sdk-request") == "" {
			s.calls = append(s.calls, op)
		}
		out, aerr = s.dispatch(op, in)
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if aerr != nil {
		w.Header().Set("X-Amzn-ErrorType", aerr.typ)
		w.WriteHeader(aerr.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": aerr.typ, "message": aerr.msg})
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) dispatch(op string, in map[string]json.RawMessage) (any, *apiError) {
	if id := str(in, "registryId"); id != "" && id != s.Account {
		return nil, &apiError{400, "InvalidParameterException", "registryId " + id + " is not this registry"}
	}
	if op == "DescribeRepositories" {
		return s.describeRepositories(in)
	}
	r, ok := s.repos[str(in, "repositoryName")]
	if !ok {
		return nil, &apiError{400, "RepositoryNotFoundException",
			fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", str(in, "repositoryName"), s.Account)}
	}
	switch op {
	case "DescribeImages":
		return s.describeImages(r, in)
	case "BatchDeleteImage":
		return s.batchDelete(r, in)
	case "BatchGetImage":
		return s.batchGet(r, in)
	case "GetLifecyclePolicy":
		if r.policy == "" {
			return nil, &apiError{400, "LifecyclePolicyNotFoundException",
				fmt.Sprintf("Lifecycle policy does not exist for the repository with name '%s' in the registry with id '%s'", r.name, s.Account)}
		}
		return map[string]any{"registryId": s.Account, "repositoryName": r.name, "lifecyclePolicyText": r.policy,
			"lastEvaluatedAt": float64(time.Now().Unix())}, nil
	case "PutLifecyclePolicy":
		text := str(in, "lifecyclePolicyText")
		if len(text) < 100 || len(text) > 30720 || !json.Valid([]byte(text)) {
			return nil, &apiError{400, "InvalidParameterException", "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure'"}
		}
		r.policy = text
		return map[string]any{"registryId": s.Account, "repositoryName": r.name, "lifecyclePolicyText": text}, nil
	}
	return nil, &apiError{400, "UnknownOperationException", "operation " + op + " is not served by this test double"}
}
