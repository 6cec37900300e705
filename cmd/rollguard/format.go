package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// format is -o/--output: one vocabulary for every command (text or json), checked once when the flag is
// parsed, so a typo is a flag error (exit 3) before anything runs.
type format string

const (
	formatText format = "text"
	formatJSON format = "json"
)

var formats = []format{formatText, formatJSON}

func (f *format) String() string { return string(*f) }
func (f *format) Type() string   { return "format" }

func (f *format) Set(s string) error {
	// "table" was images prune's name for text; kept so existing pipelines keep working.
	if s == "table" {
		s = string(formatText)
	}
	if !slices.Contains(formats, format(s)) {
		names := make([]string, len(formats))
		for i, f := range formats {
			names[i] = string(f)
		}
		return fmt.Errorf("must be %s", strings.Join(names, " or "))
	}
	*f = format(s)
	return nil
}

// addFormat registers -o/--output on fs, text by default.
func addFormat(fs *pflag.FlagSet, f *format, usage string) {
	*f = formatText
	fs.VarP(f, "output", "o", usage)
}
