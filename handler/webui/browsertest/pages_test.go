package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/testenv"
)

// The pages, each with what shows it has loaded its data.
var pages = []struct{ name, fragment, ready string }{
	{"settings", "settings", `input[data-field="outbound.maxScheduledTasksPerService"]`},
	{"presence", "presence", `tr[data-key="account1"]`},
	{"service", "services/support", `tr[data-reason]`},
	{"services", "services", `a[href="#/services/support"]`},
	{"live", "live", `ul.figures li`},
	{"outbound", "outbound", `#tasks-h`},
}

// One browser, one app: the tests run in order on the same tab.
func TestWebPage(t *testing.T) {
	s := startSite(t)
	t.Run("PagesLoadCleanAccessibleAndScreenshots", func(t *testing.T) { pagesLoad(t, s) })
	t.Run("OutboundCapRangeErrorAtItsField", func(t *testing.T) { outboundCap(t, s) })
	t.Run("AttendantFilterCheckAndRefusal", func(t *testing.T) { attendantFilter(t, s) })
	t.Run("WidgetKeyRefreshAndCopy", func(t *testing.T) { widgetKey(t, s) })
	t.Run("TestUPNShowsPresence", func(t *testing.T) { testUPN(t, s) })
	t.Run("ServicesShowReasonsThatFollowPresence", func(t *testing.T) { serviceReasons(t, s) })
	t.Run("ServiceEditorSavesAndShowsFieldErrors", func(t *testing.T) { serviceEditor(t, s) })
	t.Run("LiveViewShowsTheQueue", func(t *testing.T) { liveShowsQueue(t, s) })
	t.Run("LiveViewShowsAQueuedConversationAndItsRingingOffer", func(t *testing.T) { liveShowsRingingOffer(t, s) })
	t.Run("OutboundTasksByStateAndCancel", func(t *testing.T) { outboundTasks(t, s) })
	t.Run("EventSubscriptionsWithDeliveries", func(t *testing.T) { subscriptions(t, s) })
	t.Run("EntraSignInOffered", func(t *testing.T) { signInOffered(t, s) })
	t.Run("SupervisorSeesTheSettingsReadOnly", func(t *testing.T) { supervisorReadOnly(t, s) })
	if p := s.takeProblems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refused {
		t.Logf("proxy refused: %s", r)
	}
}

// Each page loads without console errors, has no serious or critical
// axe-core violation, and is photographed at 1280×800 and 390×844.
func pagesLoad(t *testing.T, s *site) {
	axe, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "tools", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core (npm, in tools/): %v; run make tools", err)
	}
	dir := screenshotDir(t)
	for _, p := range pages {
		s.takeProblems()
		s.run(t, "viewport", chromedp.EmulateViewport(1280, 800))
		s.open(t, p.fragment, p.ready)
		s.run(t, "settle", chromedp.Sleep(300*time.Millisecond)) // the page's first refresh lands
		eval[bool](t, s, string(axe)+"\n;true")
		type violation struct {
			ID     string   `json:"id"`
			Impact string   `json:"impact"`
			Help   string   `json:"help"`
			Nodes  []string `json:"nodes"`
		}
		violations := eval[[]violation](t, s, `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
			.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))})))`)
		for _, v := range violations {
			t.Errorf("%s: axe %s (%s): %s at %v", p.name, v.ID, v.Impact, v.Help, v.Nodes)
		}
		screenshots(t, s, p.name)
		// Narrow: nothing wider than the screen but the tables' own scroll.
		if eval[bool](t, s, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Errorf("%s: the page is wider than 390 px", p.name)
		}
		if problems := s.takeProblems(); len(problems) > 0 {
			t.Errorf("%s: %v", p.name, problems)
		}
	}
	s.run(t, "viewport", chromedp.EmulateViewport(1280, 800))
	t.Logf("screenshots in %s", dir)
}

// screenshots photographs the page at 1280×800 and 390×844 into the
// screenshot folder as name-WxH.png, and leaves the narrow viewport set.
func screenshots(t *testing.T, s *site, name string) {
	t.Helper()
	dir := screenshotDir(t)
	for _, size := range [][2]int64{{1280, 800}, {390, 844}} {
		s.run(t, "viewport", chromedp.EmulateViewport(size[0], size[1]), chromedp.Sleep(200*time.Millisecond))
		png := get(t, s, "screenshot", chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%dx%d.png", name, size[0], size[1])), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const capInput = `input[data-field="outbound.maxScheduledTasksPerService"]`

func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SetValue(chromedp.CSS(sel), value)
}

func navigate(u string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(u) }

func waitVisible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

func value(t *testing.T, s *site, sel string) string {
	t.Helper()
	return get(t, s, "value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

func outboundCap(t *testing.T, s *site) {
	s.open(t, "settings", capInput)
	s.run(t, "type 51", setValue(capInput, "51"), click(`button[type=submit]`))
	s.waitFor(t, "the range error at the field", fmt.Sprintf(`(() => { const i = document.querySelector(%q); const e = document.getElementById(i.id + "-error"); return i.getAttribute("aria-invalid") === "true" && e.textContent.length > 0; })()`, capInput))
	msg := eval[string](t, s, fmt.Sprintf(`document.getElementById(document.querySelector(%q).id + "-error").textContent`, capInput))
	if !strings.Contains(msg, "50") {
		t.Errorf("error at the field = %q, want the allowed range (1–50)", msg)
	}
	if got := s.settings(t)["outbound"].(map[string]any)["maxScheduledTasksPerService"]; got != float64(20) {
		t.Errorf("after 51: stored cap = %v, want 20 (nothing written)", got)
	}

	s.run(t, "type 30", setValue(capInput, "30"), click(`button[type=submit]`))
	s.waitFor(t, "Saved", `[...document.querySelectorAll(".alert.ok")].some(e => e.textContent === "Saved.")`)
	if eval[bool](t, s, fmt.Sprintf(`document.querySelector(%q).hasAttribute("aria-invalid")`, capInput)) {
		t.Error("after saving 30 the field still shows an error")
	}
	if got := s.settings(t)["outbound"].(map[string]any)["maxScheduledTasksPerService"]; got != float64(30) {
		t.Errorf("stored cap = %v, want 30", got)
	}
	s.run(t, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(capInput)))
	if v := value(t, s, capInput); v != "30" {
		t.Errorf("after reload the cap shows %q, want 30", v)
	}
}

func widgetKey(t *testing.T, s *site) {
	const keyInput = `input[data-widget-key]`
	s.open(t, "settings", keyInput)
	before := value(t, s, keyInput)
	stored := s.settings(t)["interact"].(map[string]any)["widgetKey"]
	if before == "" || before != stored {
		t.Fatalf("widget key shown %q, stored %v", before, stored)
	}
	s.run(t, "refresh", click(`button[aria-label="Refresh widget key"]`))
	s.waitFor(t, "a new key", fmt.Sprintf(`document.querySelector(%q).value !== %q`, keyInput, before))
	after := value(t, s, keyInput)
	if stored := s.settings(t)["interact"].(map[string]any)["widgetKey"]; after != stored {
		t.Errorf("after Refresh the page shows %q, stored %v", after, stored)
	}
	s.run(t, "copy", click(`button[aria-label="Copy widget key"]`))
	s.waitFor(t, "Copied", `[...document.querySelectorAll("[role=status]")].some(e => e.textContent === "Copied.")`)
	clip := eval[string](t, s, `navigator.clipboard.readText()`)
	if clip != after {
		t.Errorf("clipboard %q, want the widget key %q", clip, after)
	}
}

func testUPN(t *testing.T, s *site) {
	s.open(t, "presence", `input[name=upn]`)
	u := s.users[2] // Away in the simulator
	s.run(t, "test", setValue(`input[name=upn]`, u.UPN), click(`#test-h ~ .row button[type=submit]`))
	s.waitFor(t, "the result", `document.querySelector("[data-test-result] b[data-availability]") !== null`)
	avail, activity, _, _ := s.sim.Presence(tenant, u.ID)
	shown := eval[string](t, s, textOf("[data-test-result]"))
	if !strings.Contains(shown, avail+" / "+activity) || !strings.Contains(shown, u.UPN) {
		t.Errorf("Test UPN shows %q, want %s's %s / %s", shown, u.UPN, avail, activity)
	}
}

func reasonOf(userID string) string {
	return fmt.Sprintf(`(document.querySelector('tr[data-key=%q] td[data-label="Reason"]')?.textContent || "")`, userID)
}

func serviceReasons(t *testing.T, s *site) {
	s.open(t, "services/support", `tr[data-reason]`)
	s.waitFor(t, "every member", fmt.Sprintf(`document.querySelectorAll("tr[data-reason]").length === %d`, len(s.users)))
	for _, c := range []struct {
		user int
		want string
	}{{0, "InACall"}, {2, "AwayNotDelivered"}, {1, "Eligible"}} {
		got := eval[string](t, s, reasonOf(s.users[c.user].ID))
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("member %d: reason %q, want %s", c.user, got, c.want)
		}
	}
	msg := eval[string](t, s, reasonOf(s.users[0].ID))
	if !strings.Contains(msg, ": ") || len(msg) < len("InACall: ")+5 {
		t.Errorf("member 0: %q has no sentence for people", msg)
	}
	// The simulator changes a presence; after a poll the page shows it by
	// itself (it refreshes every 5 s).
	// Refreshes update rows in place (no flicker): the row element seen now
	// is the one that shows the change.
	eval[bool](t, s, fmt.Sprintf(`(document.querySelector('tr[data-key=%q]').dataset.marked = "1") === "1"`, s.users[1].ID))
	s.sim.SetPresence(tenant, s.users[1].ID, "DoNotDisturb", "Presenting", false)
	s.env.Invoke(t, "PresencePoll")
	s.waitFor(t, "DoNotDisturb for member 1", reasonOf(s.users[1].ID)+`.startsWith("DoNotDisturb")`)
	if !eval[bool](t, s, fmt.Sprintf(`document.querySelector('tr[data-key=%q]').dataset.marked === "1"`, s.users[1].ID)) {
		t.Error("the row was rebuilt by the refresh instead of updated in place")
	}
	age := eval[string](t, s, textOf("#who-h ~ .age"))
	if !strings.HasPrefix(age, "Updated ") || !strings.HasSuffix(age, " s ago") {
		t.Errorf("freshness line %q, want Updated N s ago", age)
	}
}

// With distribution deployed, the live view shows each service's queue
// figures from GET .../queue.
func liveShowsQueue(t *testing.T, s *site) {
	s.open(t, "live", `section[aria-labelledby="live-support"] ul.figures li`)
	text := eval[string](t, s, textOf(`section[aria-labelledby="live-support"] ul.figures`))
	if !strings.Contains(text, "waiting: 0") || !strings.Contains(text, "agents eligible") {
		t.Errorf("live view figures %q, want the queue's (waiting: 0, agents eligible)", text)
	}
}

// A conversation enqueued through the API while the live view is open
// shows at the page's own refresh, offered to the one free agent with its
// ringing offer (agent, time left), in the queue and in the agents table;
// a second one, with nobody free, shows queued behind it. Ending both
// takes them off the page.
func liveShowsRingingOffer(t *testing.T, s *site) {
	agent := s.users[3] // Available in the simulator, and only in this service
	s.must(t, http.MethodPut, "/services/desk", map[string]any{"name": "Front desk", "members": []map[string]any{{"userId": agent.ID, "active": true}},
		"distribution": map[string]any{"order": "LongestIdle", "ringSeconds": 180}})
	s.env.Invoke(t, "PresencePoll") // fresh readings: the agent is eligible
	const panel = `section[aria-labelledby="live-desk"]`
	// The tab may show the live view already: a reload lists the new service.
	s.run(t, "open live", navigate(s.pageURL("live")), chromedp.Reload(), waitVisible(panel+` ul.figures li`))
	eval[bool](t, s, fmt.Sprintf(`(document.querySelector(%q).dataset.marked = "1") === "1"`, panel))
	enqueue := func(id, name string) {
		var c struct{ State string }
		if err := json.Unmarshal(s.must(t, http.MethodPost, "/services/desk/queue", map[string]any{
			"conversationId": id, "customer": map[string]any{"displayName": name}}), &c); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("browser-c1", "Ada")
	row := func(id string) string { return fmt.Sprintf(`%s tr[data-key=%q]`, panel, id) }
	cell := func(id, label string) string { return textOf(fmt.Sprintf(`%s td[data-label=%q]`, row(id), label)) }
	s.waitFor(t, "the offered conversation", cell("browser-c1", "State")+` === "Offered"`)
	ringing := eval[string](t, s, cell("browser-c1", "Ringing offers"))
	if !strings.Contains(ringing, agent.ID+" (lapses in ") {
		t.Errorf("ringing offers %q, want %s with the time left", ringing, agent.ID)
	}
	if got := eval[string](t, s, cell("browser-c1", "Customer")); got != "Ada" {
		t.Errorf("customer %q, want Ada", got)
	}
	s.waitFor(t, "the agent's ringing offer", cell(agent.ID, "Offer")+`.startsWith("Ringing: browser-c1, lapses in ")`)

	enqueue("browser-c2", "Grace")
	s.waitFor(t, "the waiting conversation", cell("browser-c2", "State")+` === "Queued"`)
	if got := eval[string](t, s, cell("browser-c2", "Ringing offers")); got != "—" {
		t.Errorf("the waiting conversation shows offers %q, want none (nobody is free)", got)
	}
	order := eval[[]string](t, s, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => tr.dataset.key)`, panel+` table[data-table=queue] tbody tr`))
	if len(order) != 2 || order[0] != "browser-c1" || order[1] != "browser-c2" {
		t.Errorf("queue rows %v, want browser-c1 then browser-c2", order)
	}
	figures := eval[string](t, s, textOf(panel+" ul.figures"))
	if !strings.Contains(figures, "waiting: 1") || !strings.Contains(figures, "offered: 1") {
		t.Errorf("figures %q, want waiting: 1 and offered: 1", figures)
	}
	// The data age says the table is fresh, and the rows came by refresh:
	// the panel seen before the enqueue is the one showing them.
	age := get(t, s, "the data age", chromedp.Evaluate[struct {
		Text  string
		Stale bool
	}](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return {text: e.textContent, stale: e.classList.contains("stale")}; })()`, panel+" p.age")))
	if !regexp.MustCompile(`^Updated \d+ s ago$`).MatchString(age.Text) || age.Stale {
		t.Errorf("data age %+v, want a fresh \"Updated N s ago\"", age)
	}
	if !eval[bool](t, s, fmt.Sprintf(`document.querySelector(%q)?.dataset.marked === "1"`, panel)) {
		t.Error("the live view was rebuilt instead of refreshed")
	}
	screenshots(t, s, "live-offer")
	s.run(t, "viewport", chromedp.EmulateViewport(1280, 800))

	for _, id := range []string{"browser-c1", "browser-c2"} {
		if status, _, raw := s.env.Do(t, http.MethodDelete, "/api/tenants/"+tenant+"/conversations/"+id, nil); status >= 300 {
			t.Fatalf("ending %s: %d %s", id, status, raw)
		}
	}
	s.waitFor(t, "the ended conversations gone", fmt.Sprintf(`document.querySelector(%q) === null && document.querySelector(%q) === null`, row("browser-c1"), row("browser-c2")))
	s.waitFor(t, "the agent free again", cell(agent.ID, "Offer")+` === "—"`)
	// The other tests know one service.
	if status, _, raw := s.env.Do(t, http.MethodDelete, "/api/tenants/"+tenant+"/services/desk", nil); status >= 300 {
		t.Fatalf("deleting the service: %d %s", status, raw)
	}
}

func outboundTasks(t *testing.T, s *site) {
	due := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var task struct{ ID string }
	if err := json.Unmarshal(s.must(t, http.MethodPost, "/services/support/outbound-tasks", map[string]any{"destination": "+41440000001", "dueDateTimeUtc": due}), &task); err != nil || task.ID == "" {
		t.Fatalf("scheduling a task: %v", err)
	}
	row := fmt.Sprintf(`tr[data-key=%q]`, task.ID)
	s.open(t, "outbound", row)
	if got := eval[string](t, s, textOf(row+` td[data-label="State"]`)); got != "Scheduled" {
		t.Errorf("task state shown %q, want Scheduled", got)
	}
	// Filtered by another state, the task is not listed.
	filter := func(state string) {
		eval[bool](t, s, fmt.Sprintf(`(() => { const sel = document.querySelector("select[data-filter=state]"); sel.value = %q; return sel.dispatchEvent(new Event("change")); })()`, state))
	}
	filter("Completed")
	s.waitFor(t, "the Completed list", fmt.Sprintf(`document.querySelector(%q) === null && document.querySelector("#tasks-h ~ p.hint")?.textContent === "0 task(s)."`, row))
	filter("Scheduled")
	s.waitFor(t, "the Scheduled list", fmt.Sprintf(`document.querySelector(%q) !== null`, row))
	filter("")
	s.waitFor(t, "every task", fmt.Sprintf(`document.querySelector(%q) !== null`, row))
	s.run(t, "cancel", click(fmt.Sprintf(`button[aria-label="Cancel task %s"]`, task.ID)))
	s.waitFor(t, "Cancelled", fmt.Sprintf(`%s === "Cancelled"`, textOf(row+` td[data-label="State"]`)))
	status, _, raw := s.env.Do(t, http.MethodGet, "/api/tenants/"+tenant+"/services/support/outbound-tasks/"+task.ID, nil)
	if status != http.StatusOK || !strings.Contains(string(raw), `"state":"Cancelled"`) {
		t.Errorf("after Cancel the task is %d %s", status, raw)
	}
}

func serviceEditor(t *testing.T, s *site) {
	const hold = `input[data-field="distribution.holdSeconds"]`
	const name = `input[data-field="name"]`
	s.open(t, "services/support", hold)
	s.run(t, "hold 1 s", setValue(hold, "1"), click(`#edit-h ~ .sticky-actions button[type=submit]`))
	s.waitFor(t, "the error at holdSeconds", fmt.Sprintf(`document.querySelector(%q).getAttribute("aria-invalid") === "true"`, hold))
	if msg := eval[string](t, s, fmt.Sprintf(`document.getElementById(document.querySelector(%q).id + "-error").textContent`, hold)); !strings.Contains(msg, "3600") {
		t.Errorf("holdSeconds error %q, want the allowed range", msg)
	}
	s.run(t, "rename", setValue(hold, "45"), setValue(name, "Support desk"), click(`#edit-h ~ .sticky-actions button[type=submit]`))
	s.waitFor(t, "Saved", `[...document.querySelectorAll(".alert.ok")].some(e => e.textContent === "Saved.")`)
	status, _, raw := s.env.Do(t, http.MethodGet, "/api/tenants/"+tenant+"/services/support", nil)
	var svc struct {
		Name         string
		Members      []any
		Distribution struct{ HoldSeconds int }
	}
	if status != http.StatusOK || json.Unmarshal(raw, &svc) != nil {
		t.Fatalf("GET service: %d %s", status, raw)
	}
	if svc.Name != "Support desk" || svc.Distribution.HoldSeconds != 45 || len(svc.Members) != len(s.users) {
		t.Errorf("after Save: %+v, want name Support desk, hold 45, %d members kept", svc, len(s.users))
	}
}

func subscriptions(t *testing.T, s *site) {
	var mu sync.Mutex
	received := 0
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer rcv.Close()
	var sub struct{ ID string }
	if err := json.Unmarshal(s.must(t, http.MethodPost, "/subscriptions", map[string]any{
		"url": rcv.URL + "/hook", "events": []string{"switchboard.presenceSource.*"}, "description": "browser test"}), &sub); err != nil || sub.ID == "" {
		t.Fatalf("subscribing: %v", err)
	}
	// Graph refuses presence account 1 once (403): the poll turns that
	// source failing, which is an event, and goes on with account 2.
	s.sim.InjectFaults(tenant, graphsim.Fault{Status: http.StatusForbidden}, 1)
	s.env.Invoke(t, "PresencePoll")
	row := fmt.Sprintf(`tr[data-key=%q]`, sub.ID)
	s.open(t, "outbound", row)
	if got := eval[string](t, s, textOf(row+` td[data-label="Subscription"]`)); !strings.Contains(got, "browser test") {
		t.Errorf("subscription row %q", got)
	}
	s.run(t, "deliveries", click(fmt.Sprintf(`button[aria-label="Deliveries of %s"]`, sub.ID)))
	// The delivery goes out through the events queue; the page shows it
	// at a refresh.
	s.waitFor(t, "a delivered stateChanged event", `[...document.querySelectorAll('td[data-label="Type"]')].some(td => td.textContent === "switchboard.presenceSource.stateChanged" && td.parentNode.querySelector('td[data-label="Status"]').textContent === "200")`)
	mu.Lock()
	n := received
	mu.Unlock()
	if n == 0 {
		t.Error("the page shows a delivery the receiver never got")
	}
	s.run(t, "delete", click(fmt.Sprintf(`button[aria-label="Delete subscription %s"]`, sub.ID)))
	s.waitFor(t, "the row gone", fmt.Sprintf(`document.querySelector(%q) === null`, row))
	if status, _, _ := s.env.Do(t, http.MethodGet, "/api/tenants/"+tenant+"/subscriptions/"+sub.ID, nil); status != http.StatusNotFound {
		t.Errorf("after Delete: GET subscription %d, want 404", status)
	}
}

func attendantFilter(t *testing.T, s *site) {
	const filter = `textarea[data-field="attendantConsole.contactSearchFilter"]`
	s.open(t, "settings", filter)
	result := `document.querySelector("button[data-filter-check]").parentNode.nextElementSibling`
	invalid := fmt.Sprintf(`document.querySelector(%q).getAttribute("aria-invalid") === "true"`, filter)
	s.run(t, "a malformed filter", setValue(filter, "department eq 'Sales"), click(`button[data-filter-check]`))
	s.waitFor(t, "the error at the filter", invalid)
	s.run(t, "save it", click(`button[type=submit]`))
	s.waitFor(t, "the refusal at the field", invalid)
	if got := s.settings(t)["attendantConsole"].(map[string]any)["contactSearchFilter"]; got != "" {
		t.Errorf("after the refused filter the stored filter is %q, want empty", got)
	}
	// Well formed, but Graph refuses it: the check says why.
	s.run(t, "a filter Graph refuses", setValue(filter, "favouriteColour eq 'blue'"), click(`button[data-filter-check]`))
	s.waitFor(t, "invalid", result+`.textContent.startsWith("invalid")`)
	if got := eval[string](t, s, result+".textContent"); !strings.Contains(got, "favouriteColour") {
		t.Errorf("the check says %q, want Graph's message naming the property", got)
	}
	// A filter Graph accepts checks ok, saves, and is recorded as checked.
	s.run(t, "a filter Graph accepts", setValue(filter, "department eq 'Sales'"), click(`button[data-filter-check]`))
	s.waitFor(t, "ok", result+`.textContent === "ok"`)
	s.run(t, "save it", click(`button[type=submit]`))
	s.waitFor(t, "Saved", `[...document.querySelectorAll(".alert.ok")].some(e => e.textContent === "Saved.")`)
	ac := s.settings(t)["attendantConsole"].(map[string]any)
	if check, _ := ac["contactSearchFilterCheck"].(map[string]any); ac["contactSearchFilter"] != "department eq 'Sales'" || check["state"] != "ok" {
		t.Errorf("stored %v, want the filter with its check ok", ac)
	}
	if got := eval[string](t, s, textOf("[data-filter-check-state]")); !strings.HasPrefix(got, "Last check: ok") {
		t.Errorf("last check shown %q, want Last check: ok", got)
	}
}
