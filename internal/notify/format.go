package notify

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Payload encodes an event for a format.
func Payload(f Format, e Event) ([]byte, error) {
	e.Schema = Schema
	switch f {
	case Slack:
		return marshal(slackMessage(e))
	case Teams:
		return marshal(teamsMessage(e))
	}
	return marshal(e)
}

// marshal is json.Marshal without HTML escaping: receivers show the text, and "\u003c" helps nobody.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// headline is "Release failed: web.v7 in production".
func headline(e Event) string {
	h := e.Kind.Title() + ": " + e.Release
	if e.Environment != "" {
		h += " in " + e.Environment
	}
	return h
}

// facts are the labelled values every format shows, in order, empty ones left out.
func facts(e Event) [][2]string {
	all := [][2]string{
		{"App", e.App}, {"Environment", e.Environment}, {"Namespace", e.Namespace}, {"Cluster", e.Cluster},
		{"Release", e.Release}, {"Workload", e.Workload}, {"Reason", e.Reason}, {"Deployed by", e.DeployedBy},
	}
	if e.Rollback != nil {
		state := "healthy"
		if !e.Rollback.Healthy {
			state = "NOT healthy"
		}
		all = append(all, [2]string{"Rollback", state}, [2]string{"Rolled back to", e.Rollback.ToRelease}, [2]string{"Approved by", e.Rollback.By})
	}
	var out [][2]string
	for _, f := range all {
		if f[1] != "" {
			out = append(out, f)
		}
	}
	return out
}

// text is the plain-text body: the message, the rollback's message and the fix.
func text(e Event) string {
	var lines []string
	if e.Message != "" {
		lines = append(lines, e.Message)
	}
	if e.Rollback != nil && e.Rollback.Message != "" {
		lines = append(lines, "Rollback: "+e.Rollback.Message)
	}
	if e.Fix != "" {
		lines = append(lines, "Fix: "+e.Fix)
	}
	return strings.Join(lines, "\n")
}

// slackEscape escapes the three characters Slack's mrkdwn treats as markup.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []any       `json:"elements,omitempty"`
}

type slackButton struct {
	Type string    `json:"type"`
	Text slackText `json:"text"`
	URL  string    `json:"url"`
}

// slackMessage is a Block Kit message for an incoming webhook; text is the notification's fallback.
func slackMessage(e Event) map[string]any {
	blocks := []slackBlock{{Type: "header", Text: &slackText{"plain_text", headline(e)}}}
	if t := text(e); t != "" {
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn", slackEscape.Replace(t)}})
	}
	var fields []slackText
	for _, f := range facts(e) {
		if len(fields) == 10 { // Slack's limit per section
			break
		}
		fields = append(fields, slackText{"mrkdwn", "*" + f[0] + "*\n" + slackEscape.Replace(f[1])})
	}
	if len(fields) > 0 {
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	if len(e.Evidence) > 0 {
		ev := strings.ReplaceAll(strings.Join(e.Evidence, "\n"), "```", "'''")
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn", "*Evidence*\n```" + slackEscape.Replace(ev) + "```"}})
	}
	if a := e.Approval; a != nil {
		blocks = append(blocks, slackBlock{Type: "section", Text: &slackText{"mrkdwn",
			"*Decide*\nApprove the rollback: `" + slackEscape.Replace(a.ApproveCommand) + "`\nKeep the failed release: `" + slackEscape.Replace(a.RejectCommand) + "`"}})
		if a.Dashboard != "" {
			blocks = append(blocks, slackBlock{Type: "actions", Elements: []any{
				slackButton{Type: "button", Text: slackText{"plain_text", "Open in rollguard dashboard"}, URL: a.Dashboard},
			}})
		}
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []any{
		slackText{"mrkdwn", "rollguard · " + e.At.UTC().Format("2006-01-02 15:04:05 UTC")},
	}})
	return map[string]any{"text": headline(e), "blocks": blocks}
}

// teamsMessage is the message a Teams "Post to a channel when a webhook request is received" workflow
// takes: an attachment holding an Adaptive Card (version 1.4, which Teams renders everywhere).
func teamsMessage(e Event) map[string]any {
	color := "Attention"
	if e.Kind == RolledBack && e.Rollback != nil && e.Rollback.Healthy {
		color = "Warning"
	}
	body := []map[string]any{
		{"type": "TextBlock", "text": headline(e), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
	}
	if t := text(e); t != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": t, "wrap": true})
	}
	var fs []map[string]string
	for _, f := range facts(e) {
		fs = append(fs, map[string]string{"title": f[0], "value": f[1]})
	}
	if len(fs) > 0 {
		body = append(body, map[string]any{"type": "FactSet", "facts": fs})
	}
	if len(e.Evidence) > 0 {
		body = append(body, map[string]any{"type": "TextBlock", "text": "Evidence", "weight": "Bolder", "wrap": true},
			map[string]any{"type": "TextBlock", "text": strings.Join(e.Evidence, "\n\n"), "fontType": "Monospace", "wrap": true, "size": "Small"})
	}
	var actions []map[string]any
	if a := e.Approval; a != nil {
		body = append(body, map[string]any{"type": "TextBlock", "wrap": true,
			"text": "Approve the rollback: `" + a.ApproveCommand + "`\n\nKeep the failed release: `" + a.RejectCommand + "`"})
		if a.Dashboard != "" {
			actions = append(actions, map[string]any{"type": "Action.OpenUrl", "title": "Open in rollguard dashboard", "url": a.Dashboard})
		}
	}
	body = append(body, map[string]any{"type": "TextBlock", "text": "rollguard · " + e.At.UTC().Format("2006-01-02 15:04:05 UTC"), "isSubtle": true, "size": "Small", "wrap": true})
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
		"msteams": map[string]string{"width": "Full"},
	}
	if len(actions) > 0 {
		card["actions"] = actions
	}
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
}
