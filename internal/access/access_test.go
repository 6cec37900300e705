package access

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		p       Policy
		want    string // canonical CIDRs joined by ","
		wantErr string
	}{
		{"canonical", Policy{Provider: Nginx, AllowCIDRs: []string{"10.0.0.0/8"}}, "10.0.0.0/8", ""},
		{"masked and deduplicated", Policy{Provider: Kong, AllowCIDRs: []string{" 10.1.2.3/8", "10.0.0.0/8", "2001:db8::1/32"}}, "10.0.0.0/8,2001:db8::/32", ""},
		{"host route", Policy{Provider: NetworkPolicy, AllowCIDRs: []string{"203.0.113.7/32"}}, "203.0.113.7/32", ""},
		{"bits too many", Policy{Provider: Nginx, AllowCIDRs: []string{"10.0.0.0/33"}}, "", `allowCIDRs[0]: "10.0.0.0/33" is not a CIDR`},
		{"bare address", Policy{Provider: Nginx, AllowCIDRs: []string{"10.0.0.0/8", "::1"}}, "", `allowCIDRs[1]: "::1" is not a CIDR: a single address is ::1/128`},
		{"garbage", Policy{Provider: Nginx, AllowCIDRs: []string{"everyone"}}, "", "write it as ADDRESS/BITS"},
		{"empty", Policy{Provider: Nginx}, "", "allowCIDRs: required"},
		{"no provider", Policy{AllowCIDRs: []string{"10.0.0.0/8"}}, "", "provider: required"},
		{"unknown provider", Policy{Provider: "istio", AllowCIDRs: []string{"10.0.0.0/8"}}, "", `provider: must be nginx, kong or networkpolicy, got "istio"`},
		{"selector on nginx", Policy{Provider: Nginx, AllowCIDRs: []string{"10.0.0.0/8"}, PodSelector: map[string]string{"a": "b"}}, "", "podSelector: only used with provider networkpolicy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Validate(tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.Join(got.AllowCIDRs, ","); s != tc.want {
				t.Errorf("CIDRs %s, want %s", s, tc.want)
			}
		})
	}
}

func TestMergePlugins(t *testing.T) {
	cases := []struct{ existing, want string }{
		{"", KongPluginName},
		{"auth", "auth," + KongPluginName},
		{"auth, rate-limit", "auth,rate-limit," + KongPluginName},
		{"auth," + KongPluginName, "auth," + KongPluginName},
		{KongPluginName + ",auth,auth", KongPluginName + ",auth"},
	}
	for _, tc := range cases {
		if got := MergePlugins(tc.existing, KongPluginName); got != tc.want {
			t.Errorf("MergePlugins(%q) = %q, want %q", tc.existing, got, tc.want)
		}
	}
}
