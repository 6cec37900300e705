// Package oneline folds text from other programs and libraries (API server messages, scheduler and
// admission messages, registry errors, YAML parser errors) onto one line, so that every failure rollguard
// reports is one line naming the problem, in a log, a table cell or a CI annotation.
package oneline

import "strings"

// Fold joins s's words with single spaces: line breaks, tabs and runs of blanks become one space.
func Fold(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
