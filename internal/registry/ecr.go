package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	gcrtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/rollguard/rollguard/internal/exitcode"
	"github.com/rollguard/rollguard/internal/oneline"
	"github.com/rollguard/rollguard/internal/registry/lifecycle"
)

// ECR's limit of image IDs per BatchDeleteImage request.
const ecrDeleteBatch = 100

// NoteECR says where push times come from on ECR.
const NoteECR = "pushed = ECR's imagePushedAt; untagged images are listed, counted and expired as ECR does"

// ecrRepo is a repository read through the Amazon ECR API (AWS SDK for Go v2), which knows what the OCI
// distribution API does not: each image's push time, and untagged images.
type ecrRepo struct {
	api  *ecr.Client
	repo name.Repository
	// registryID is the account of an ACCOUNT.dkr.ecr.REGION.amazonaws.com host; nil (the caller's default
	// registry) for other host names given with --registry-api ecr.
	registryID *string
}

// openECR builds an ECR client with the SDK's standard credential chain (environment, shared config and SSO
// profiles, web identity for EKS IRSA and GitHub OIDC, container and instance roles) and its standard
// endpoint settings (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_ECR). The region is the one in the host name, where
// the repository lives; for other host names it is the configured one.
func (c *Client) openECR(ctx context.Context, repo name.Repository) (*ecrRepo, error) {
	var opts []func(*config.LoadOptions) error
	r := &ecrRepo{repo: repo}
	if m := ecrHost.FindStringSubmatch(repo.RegistryStr()); m != nil {
		r.registryID = aws.String(m[1])
		opts = append(opts, config.WithRegion(m[2]))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, exitcode.Unreachablef("reading the AWS configuration for ECR %s: %v; check AWS_PROFILE and ~/.aws/config", repo.RegistryStr(), err)
	}
	if cfg.Region == "" {
		return nil, exitcode.BadInputf("no AWS region for ECR repository %s: the host names none; set AWS_REGION", repo.Name())
	}
	r.api = ecr.NewFromConfig(cfg)
	return r, nil
}

func (e *ecrRepo) notes() []string { return []string{NoteECR} }

// list pages through DescribeImages (all tag states, active images), 1000 at a time.
func (e *ecrRepo) list(ctx context.Context) (*Repository, error) {
	return e.describe(ctx, types.TagStatusAny)
}

// describe lists the images with the given tag status.
func (e *ecrRepo) describe(ctx context.Context, status types.TagStatus) (*Repository, error) {
	out := &Repository{Name: e.repo, Tags: map[string]string{}, Parents: map[string]string{}}
	var indexes []string
	p := ecr.NewDescribeImagesPaginator(e.api, &ecr.DescribeImagesInput{
		RegistryId:     e.registryID,
		RepositoryName: aws.String(e.repo.RepositoryStr()),
		Filter:         &types.DescribeImagesFilter{TagStatus: status},
		MaxResults:     aws.Int32(1000),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, e.classify(err, "listing images of")
		}
		for _, d := range page.ImageDetails {
			digest := aws.ToString(d.ImageDigest)
			if gcrtypes.MediaType(aws.ToString(d.ImageManifestMediaType)).IsIndex() {
				indexes = append(indexes, digest)
			}
			tags := slices.Clone(d.ImageTags)
			slices.Sort(tags)
			img := lifecycle.Image{Digest: digest, Tags: tags}
			if d.ImagePushedAt != nil {
				img.Pushed = d.ImagePushedAt.UTC()
			} else {
				out.Undated = append(out.Undated, digest)
			}
			out.Images = append(out.Images, img)
			for _, t := range tags {
				out.Tags[t] = digest
			}
		}
	}
	slices.SortFunc(out.Images, func(a, b lifecycle.Image) int { return strings.Compare(a.Digest, b.Digest) })
	if status != types.TagStatusTagged {
		if err := e.readIndexes(ctx, indexes, out.Parents); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readIndexes reads multi-platform indexes (BatchGetImage, 100 at a time) and maps each platform image to
// its index: ECR lists platform images as untagged images of their own.
func (e *ecrRepo) readIndexes(ctx context.Context, digests []string, parents map[string]string) error {
	for batch := range slices.Chunk(digests, ecrDeleteBatch) {
		ids := make([]types.ImageIdentifier, len(batch))
		for i, d := range batch {
			ids[i] = types.ImageIdentifier{ImageDigest: aws.String(d)}
		}
		out, err := e.api.BatchGetImage(ctx, &ecr.BatchGetImageInput{
			RegistryId: e.registryID, RepositoryName: aws.String(e.repo.RepositoryStr()), ImageIds: ids,
			AcceptedMediaTypes: []string{string(gcrtypes.OCIImageIndex), string(gcrtypes.DockerManifestList)},
		})
		if err != nil {
			return e.classify(err, "reading the multi-platform indexes of")
		}
		for _, img := range out.Images {
			im, err := v1.ParseIndexManifest(strings.NewReader(aws.ToString(img.ImageManifest)))
			if err != nil {
				continue // unreadable: its platform images are then kept only by ECR's own refusal
			}
			for _, m := range im.Manifests {
				parents[m.Digest.String()] = aws.ToString(img.ImageId.ImageDigest)
			}
		}
	}
	return nil
}

// tagsNow lists the tagged images again (filter TAGGED: untagged images carry no tag to re-check).
func (e *ecrRepo) tagsNow(ctx context.Context, _ []string) (map[string]string, error) {
	l, err := e.describe(ctx, types.TagStatusTagged)
	if err != nil {
		return nil, err
	}
	return l.Tags, nil
}

// remove deletes by digest with BatchDeleteImage, 100 at a time; ECR drops every tag of a deleted image.
// Per-image failures (an image a manifest list still references, a KMS error) come back as refusals.
func (e *ecrRepo) remove(ctx context.Context, imgs []lifecycle.Image) ([]Deleted, []Refused, error) {
	tags := map[string][]string{}
	for _, img := range imgs {
		tags[img.Digest] = img.Tags
	}
	var deleted []Deleted
	var refused []Refused
	for batch := range slices.Chunk(imgs, ecrDeleteBatch) {
		ids := make([]types.ImageIdentifier, len(batch))
		for i, img := range batch {
			ids[i] = types.ImageIdentifier{ImageDigest: aws.String(img.Digest)}
		}
		out, err := e.api.BatchDeleteImage(ctx, &ecr.BatchDeleteImageInput{
			RegistryId: e.registryID, RepositoryName: aws.String(e.repo.RepositoryStr()), ImageIds: ids,
		})
		if err != nil {
			return deleted, refused, e.classify(err, "deleting images from")
		}
		for _, id := range out.ImageIds {
			d := aws.ToString(id.ImageDigest)
			if !slices.ContainsFunc(deleted, func(x Deleted) bool { return x.Digest == d }) {
				deleted = append(deleted, Deleted{Digest: d, Tags: tags[d]})
			}
		}
		for _, f := range out.Failures {
			d := aws.ToString(f.ImageId.ImageDigest)
			refused = append(refused, Refused{Digest: d, Tags: tags[d], Code: string(f.FailureCode), Reason: aws.ToString(f.FailureReason)})
		}
	}
	return deleted, refused, nil
}

// Error codes with which AWS refuses the caller's credentials (or their permissions) rather than the request.
var awsAuthCodes = []string{
	"UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch", "ExpiredTokenException",
	"ExpiredToken", "InvalidClientTokenId", "MissingAuthenticationTokenException", "AccessDeniedException",
	"AccessDenied", "UnauthorizedOperation", "IncompleteSignature",
}

// classify turns an ECR API error into a one-line error with the exit code a pipeline can branch on: AWS
// refused the credentials, none were found, or the endpoint cannot be reached → 4; no such repository or an
// invalid request → 3. Secrets never appear: AWS messages do not carry them and the credentials are not read here.
func (e *ecrRepo) classify(err error, doing string) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	where := "ECR " + e.repo.RegistryStr()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch code := ae.ErrorCode(); {
		case slices.Contains(awsAuthCodes, code):
			return exitcode.Unreachablef("AWS refused our credentials while %s %s (%s: %s); check AWS_PROFILE, the role and its ecr: permissions",
				doing, e.repo.Name(), code, ae.ErrorMessage())
		case code == "RepositoryNotFoundException":
			return exitcode.BadInputf("repository %s not found on %s; check --repository", e.repo.RepositoryStr(), where)
		case code == "InvalidParameterException" || code == "ValidationException" || code == "LimitExceededException":
			return exitcode.BadInputf("%s %s: %s refused the request (%s: %s)", doing, e.repo.Name(), where, code, ae.ErrorMessage())
		}
		return fmt.Errorf("%s %s: %s", doing, e.repo.Name(), oneline.Fold(ae.Error()))
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return exitcode.Unreachablef("cannot reach %s while %s %s: %v", where, doing, e.repo.Name(), rootCause(err))
	}
	if strings.Contains(err.Error(), "get identity") || strings.Contains(err.Error(), "retrieve credentials") {
		return exitcode.Unreachablef("no AWS credentials for %s: %s; set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a web identity or instance role",
			where, oneline.Fold(lastPart(err.Error())))
	}
	return fmt.Errorf("%s %s: %s", doing, e.repo.Name(), oneline.Fold(err.Error()))
}

// lastPart keeps the end of an SDK error chain ("operation error ECR: DescribeImages, get identity: ... : X"),
// the part that says what is wrong.
func lastPart(s string) string {
	if i := strings.LastIndex(s, "get identity: "); i >= 0 {
		return s[i+len("get identity: "):]
	}
	return s
}
