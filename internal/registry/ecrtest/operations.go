package ecrtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The ECR operations the server answers, one function each, following the API Reference pages listed in the
// package comment.

func (s *Server) describeRepositories(in map[string]json.RawMessage) (any, *apiError) {
	var names []string
	_ = json.Unmarshal(in["repositoryNames"], &names)
	if len(names) == 0 {
		for n := range s.repos {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	var out []map[string]any
	for _, n := range names {
		r, ok := s.repos[n]
		if !ok {
			return nil, &apiError{400, "RepositoryNotFoundException",
				fmt.Sprintf("The repository with name '%s' does not exist in the registry with id '%s'", n, s.Account)}
		}
		out = append(out, map[string]any{
			"repositoryArn":  fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", s.Region, s.Account, n),
			"registryId":     s.Account,
			"repositoryName": n,
			"repositoryUri":  s.Host() + "/" + n,
			"createdAt":      float64(r.created.Unix()),
		})
	}
	return map[string]any{"repositories": out}, nil
}

type imageID struct {
	ImageDigest string `json:"imageDigest,omitempty"`
	ImageTag    string `json:"imageTag,omitempty"`
}

func (s *Server) describeImages(r *repository, in map[string]json.RawMessage) (any, *apiError) {
	var ids []imageID
	_ = json.Unmarshal(in["imageIds"], &ids)
	var filter struct {
		TagStatus string `json:"tagStatus"`
	}
	_ = json.Unmarshal(in["filter"], &filter)
	maxResults := 100
	if raw, ok := in["maxResults"]; ok {
		_ = json.Unmarshal(raw, &maxResults)
		if maxResults < 1 || maxResults > 1000 {
			return nil, &apiError{400, "InvalidParameterException", "maxResults must be between 1 and 1000"}
		}
	}
	token := str(in, "nextToken")
	if len(ids) > 0 && (token != "" || in["maxResults"] != nil) {
		return nil, &apiError{400, "InvalidParameterException", "imageIds cannot be used with nextToken or maxResults"}
	}
	// ECR documents no order; digest order makes sure a client does not read push order into the listing.
	all := slices.Clone(r.images)
	slices.SortFunc(all, func(a, b *Image) int { return strings.Compare(a.Digest, b.Digest) })
	var sel []*Image
	for _, img := range all {
		switch {
		case len(ids) > 0:
			if !slices.ContainsFunc(ids, func(id imageID) bool {
				return id.ImageDigest == img.Digest || (id.ImageTag != "" && slices.Contains(img.Tags, id.ImageTag))
			}) {
				continue
			}
		case filter.TagStatus == "TAGGED" && len(img.Tags) == 0, filter.TagStatus == "UNTAGGED" && len(img.Tags) > 0:
			continue
		}
		sel = append(sel, img)
	}
	if len(ids) > 0 && len(sel) == 0 {
		return nil, &apiError{400, "ImageNotFoundException", "The image requested does not exist in the specified repository."}
	}
	start := 0
	if token != "" {
		if _, err := fmt.Sscanf(token, "page-%d", &start); err != nil || start > len(sel) {
			return nil, &apiError{400, "InvalidParameterException", "Invalid parameter at 'nextToken'"}
		}
	}
	end := min(start+maxResults, len(sel))
	details := []map[string]any{}
	for _, img := range sel[start:end] {
		d := map[string]any{
			"registryId": s.Account, "repositoryName": r.name, "imageDigest": img.Digest,
			"imageSizeInBytes": img.Size, "imagePushedAt": float64(img.Pushed.UnixMilli()) / 1000,
			"imageManifestMediaType": img.MediaType,
		}
		if len(img.Tags) > 0 {
			d["imageTags"] = img.Tags
		}
		details = append(details, d)
	}
	out := map[string]any{"imageDetails": details}
	if end < len(sel) {
		out["nextToken"] = fmt.Sprintf("page-%d", end)
	}
	return out, nil
}

// referenced reports whether an index in the repository lists digest.
func (s *Server) referenced(r *repository, digest string) bool {
	for _, img := range r.images {
		if img.Manifest != "" && strings.Contains(img.Manifest, `"`+digest+`"`) {
			return true
		}
	}
	return false
}

func (s *Server) batchDelete(r *repository, in map[string]json.RawMessage) (any, *apiError) {
	var ids []imageID
	_ = json.Unmarshal(in["imageIds"], &ids)
	if len(ids) < 1 || len(ids) > 100 {
		return nil, &apiError{400, "InvalidParameterException", "imageIds must have between 1 and 100 items"}
	}
	deleted, failures := []imageID{}, []map[string]any{}
	fail := func(id imageID, code, reason string) {
		failures = append(failures, map[string]any{"imageId": id, "failureCode": code, "failureReason": reason})
	}
	for _, id := range ids {
		i := slices.IndexFunc(r.images, func(img *Image) bool {
			return (id.ImageDigest == "" || img.Digest == id.ImageDigest) && (id.ImageTag == "" || slices.Contains(img.Tags, id.ImageTag))
		})
		switch {
		case id.ImageDigest == "" && id.ImageTag == "":
			fail(id, "MissingDigestAndTag", "Missing digest and tag")
			continue
		case i < 0:
			fail(id, "ImageNotFound", "Requested image not found")
			continue
		}
		img := r.images[i]
		if s.referenced(r, img.Digest) {
			fail(id, "ImageReferencedByManifestList", "Requested image is referenced by a manifest list")
			continue
		}
		if code, ok := s.refuse[img.Digest]; ok {
			fail(id, code, "Requested image is refused by the test double ("+code+")")
			continue
		}
		if id.ImageDigest == "" && len(img.Tags) > 1 { // untag only
			img.Tags = slices.DeleteFunc(img.Tags, func(t string) bool { return t == id.ImageTag })
		} else {
			r.images = slices.Delete(r.images, i, i+1)
		}
		deleted = append(deleted, imageID{ImageDigest: img.Digest, ImageTag: id.ImageTag})
	}
	return map[string]any{"imageIds": deleted, "failures": failures}, nil
}

// batchGet returns manifests by digest or tag (at most 100 imageIds), with ImageNotFound failures.
func (s *Server) batchGet(r *repository, in map[string]json.RawMessage) (any, *apiError) {
	var ids []imageID
	_ = json.Unmarshal(in["imageIds"], &ids)
	if len(ids) < 1 || len(ids) > 100 {
		return nil, &apiError{400, "InvalidParameterException", "imageIds must have between 1 and 100 items"}
	}
	images, failures := []map[string]any{}, []map[string]any{}
	for _, id := range ids {
		i := slices.IndexFunc(r.images, func(img *Image) bool {
			return (id.ImageDigest == "" || img.Digest == id.ImageDigest) && (id.ImageTag == "" || slices.Contains(img.Tags, id.ImageTag))
		})
		if i < 0 {
			failures = append(failures, map[string]any{"imageId": id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"})
			continue
		}
		img := r.images[i]
		manifest := img.Manifest
		if manifest == "" {
			manifest = `{"schemaVersion":2,"mediaType":"` + img.MediaType + `"}`
		}
		images = append(images, map[string]any{"registryId": s.Account, "repositoryName": r.name,
			"imageId": imageID{ImageDigest: img.Digest}, "imageManifest": manifest, "imageManifestMediaType": img.MediaType})
	}
	return map[string]any{"images": images, "failures": failures}, nil
}

func str(in map[string]json.RawMessage, key string) string {
	var s string
	_ = json.Unmarshal(in[key], &s)
	return s
}
