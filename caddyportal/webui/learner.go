package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// index serves `/`: the admin goes to the admin pages; everyone else to the
// portal index when one is configured (reference §3.3), else the catalog.
func (u *UI) index(w http.ResponseWriter, r *http.Request, _ string) {
	id := u.current(r)
	switch {
	case id.admin():
		http.Redirect(w, r, routes.AdminPath, http.StatusFound)
	case u.cfg.Index != "":
		http.Redirect(w, r, u.cfg.Index, http.StatusFound)
	default:
		http.Redirect(w, r, routes.CatalogPath, http.StatusFound)
	}
}

// learnersMayLogin reports whether anyone but the admin can log in.
func (u *UI) learnersMayLogin() bool { return u.cfg.Registration == config.RegistrationOneStep }

// localNext returns the `next` target if it is a path on this host, "" if
// absent, and ok false for anything else (another host, a scheme, a
// protocol-relative or backslash trick): never an open redirect.
func (u *UI) localNext(raw string) (string, bool) {
	if raw == "" {
		return "", true
	}
	if !strings.HasPrefix(raw, "/") || u.redirect.Check(raw, "") != nil {
		return "", false
	}
	return raw, true
}

// badNext refuses a sign-in or sign-up whose next is not on this portal.
func (u *UI) badNext(w http.ResponseWriter, r *http.Request) {
	u.fail(w, r, http.StatusBadRequest, "Bad redirect", "The address to return to after signing in is not on this portal.")
}

type loginData struct {
	Username string
	Next     string
	// AdminOnly says that only the admin can log in here; Anonymous that
	// learners start workshops from the catalog without signing in.
	AdminOnly, Anonymous bool
}

// loginForm is the sign-in page's data for the login being made by user,
// going to next, in this portal's registration mode.
func (u *UI) loginForm(user, next string) loginData {
	return loginData{Username: user, Next: next, AdminOnly: !u.learnersMayLogin(),
		Anonymous: u.cfg.Registration == config.RegistrationAnonymous}
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, _ string) {
	next, ok := u.localNext(r.URL.Query().Get("next"))
	if !ok {
		u.badNext(w, r)
		return
	}
	id, err := u.visitor(w, r)
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	if id.admin() || id.learner() {
		http.Redirect(w, r, u.afterLogin(id, next), http.StatusFound)
		return
	}
	// username: the address a sign-up just took, so the learner types
	// only the password.
	u.render(w, r, http.StatusOK, "login", id, view{Title: "Sign in", CSRF: u.csrfToken(id),
		Notice: notice(r.URL.Query().Get("notice")), Data: u.loginForm(r.URL.Query().Get("username"), next)})
}

func (u *UI) afterLogin(id identity, next string) string {
	switch {
	case next != "":
		return next
	case id.admin():
		return routes.AdminPath
	}
	return routes.CatalogPath
}

// login checks the form, then the credentials: the admin's in any mode,
// a learner's only with registration one-step.
func (u *UI) login(w http.ResponseWriter, r *http.Request, _ string) {
	id := u.current(r)
	if !u.csrfOK(r, id) {
		u.csrfFail(w, r)
		return
	}
	next, ok := u.localNext(r.PostFormValue("next"))
	if !ok {
		u.badNext(w, r)
		return
	}
	user := strings.TrimSpace(r.PostFormValue("username"))
	pw := r.PostFormValue("password")
	form := u.loginForm(user, next)
	ip := u.clientIP(r)
	// The attempt takes its slot before the password is checked, so
	// concurrent guesses count.
	attempt, wait := u.logins.Reserve(user, ip)
	if attempt == nil {
		w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
		u.log.Info("webui: sign-in refused: too many failures", zap.String("username", user), zap.String("client", ip))
		u.render(w, r, http.StatusTooManyRequests, "login", id, view{Title: "Sign in", CSRF: u.csrfToken(id),
			Error: "Too many failed sign-in attempts for this account or from this network. Wait " +
				waitText(wait) + " and try again.", Data: form})
		return
	}
	// Whatever is not decided below (the store down) gives the slot back.
	defer attempt.Release()
	refuse := func(status int, msg string) {
		attempt.Fail()
		// The username helps an operator spot an attack; the password is
		// never logged.
		u.log.Info("webui: sign-in refused", zap.String("username", user), zap.String("client", ip))
		u.render(w, r, status, "login", id, view{Title: "Sign in", CSRF: u.csrfToken(id), Error: msg, Data: form})
	}
	if len(user) > 256 || len(pw) > 1024 {
		refuse(http.StatusBadRequest, "The username or password is too long.")
		return
	}
	if u.checkAdmin(user, pw) {
		attempt.Succeed()
		nid, err := u.setLogin(w, r, roleAdmin, u.cfg.Admin.Username, u.fingerprint(u.cfg.Admin.Password))
		if err != nil {
			u.unavailable(w, r, err)
			return
		}
		http.Redirect(w, r, u.afterLogin(nid, next), http.StatusSeeOther)
		return
	}
	if !u.learnersMayLogin() {
		refuse(http.StatusForbidden, "Sign-in is disabled on this portal: only the administrator can sign in.")
		return
	}
	usr, err := u.checkLearner(r, user, pw)
	if errors.Is(err, errLoginFailed) {
		refuse(http.StatusUnauthorized, "The email address or password is not correct.")
		return
	}
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	attempt.Succeed()
	nid, err := u.setLogin(w, r, roleLearner, usr.ID, u.fingerprint(usr.PasswordHash))
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, u.afterLogin(nid, next), http.StatusSeeOther)
}

// waitText is wait in words for the pages, rounded up.
func waitText(wait time.Duration) string {
	if wait <= time.Minute {
		s := loginlimit.RetryAfter(wait)
		if s == "1" {
			return "a second"
		}
		return s + " seconds"
	}
	return strconv.Itoa(int((wait+time.Minute-1)/time.Minute)) + " minutes"
}

// csrfFail refuses a POST whose CSRF token is missing or does not belong
// to this browser's login state.
func (u *UI) csrfFail(w http.ResponseWriter, r *http.Request) {
	u.fail(w, r, http.StatusForbidden, "Form expired",
		"This form is no longer valid (it expired, or you signed in or out since it was shown). Go back, reload the page and try again.")
}

// logoutPage is GET /accounts/logout/: clients use it as an index_url, so
// it shows a sign-out button rather than logging out on a GET that any
// site could trigger.
func (u *UI) logoutPage(w http.ResponseWriter, r *http.Request, _ string) {
	id := u.current(r)
	u.render(w, r, http.StatusOK, "logout", id, view{Title: "Sign out"})
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, _ string) {
	id := u.current(r)
	if !u.csrfOK(r, id) {
		u.csrfFail(w, r)
		return
	}
	u.clearLogin(w, r)
	http.Redirect(w, r, routes.LoginPath, http.StatusSeeOther)
}

// signupData is the sign-up form; Next is where the learner was going
// when the login page sent them here (a workshop's start link), kept for
// the sign-in that follows.
type signupData struct {
	Email, FirstName, LastName string
	Next                       string
}

func (u *UI) signupPage(w http.ResponseWriter, r *http.Request, _ string) {
	if !u.learnersMayLogin() {
		u.fail(w, r, http.StatusForbidden, "Registration disabled", "This portal does not accept new accounts.")
		return
	}
	next, ok := u.localNext(r.URL.Query().Get("next"))
	if !ok {
		u.badNext(w, r)
		return
	}
	id, err := u.visitor(w, r)
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "signup", id, view{Title: "Create an account", CSRF: u.csrfToken(id), Data: signupData{Next: next}})
}

// passwordRule is what a password too short or too long is refused with,
// in the sign-up form's words (characters; bcrypt counts bytes).
const passwordRule = "The password must be 8 to 72 characters long; accented letters and other symbols count as two or more."

// Limits on sign-up fields. bcrypt reads at most 72 bytes of a password;
// refusing longer ones avoids silently ignoring the rest.
const (
	minPassword = 8
	maxPassword = 72
	maxName     = 100
	maxEmail    = 254
)

func (u *UI) signup(w http.ResponseWriter, r *http.Request, _ string) {
	if !u.learnersMayLogin() {
		u.fail(w, r, http.StatusForbidden, "Registration disabled", "This portal does not accept new accounts.")
		return
	}
	id := u.current(r)
	if !u.csrfOK(r, id) {
		u.csrfFail(w, r)
		return
	}
	form := signupData{Email: strings.TrimSpace(r.PostFormValue("email")),
		FirstName: strings.TrimSpace(r.PostFormValue("first_name")), LastName: strings.TrimSpace(r.PostFormValue("last_name"))}
	form.Next, _ = u.localNext(r.PostFormValue("next")) // one that is not the portal's is dropped
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	bad := func(status int, msg string) {
		u.render(w, r, status, "signup", id, view{Title: "Create an account", CSRF: u.csrfToken(id), Error: msg, Data: form})
	}
	addr, err := mail.ParseAddress(form.Email)
	switch {
	case form.Email == "" || len(form.Email) > maxEmail || err != nil || addr.Address != form.Email:
		bad(http.StatusBadRequest, "Enter a valid email address.")
		return
	case utf8.RuneCountInString(form.FirstName) > maxName || utf8.RuneCountInString(form.LastName) > maxName:
		bad(http.StatusBadRequest, "Names can be at most 100 characters long.")
		return
	case !sessions.ValidName(form.FirstName) || !sessions.ValidName(form.LastName):
		bad(http.StatusBadRequest, "Names cannot contain tabs, line breaks or other control characters.")
		return
	case len(pw) < minPassword || len(pw) > maxPassword:
		bad(http.StatusBadRequest, passwordRule)
		return
	case pw != pw2:
		bad(http.StatusBadRequest, "The two passwords do not match.")
		return
	}
	// Counted before the (deliberately slow) password hash, so a flood
	// costs neither CPU nor accounts.
	ip := u.clientIP(r)
	if wait := u.signups.Allow(ip); wait > 0 {
		u.log.Info("webui: sign-up refused: too many from this address", zap.String("client", ip))
		w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
		bad(http.StatusTooManyRequests, "Too many accounts were created from your network. Wait "+waitText(wait)+" and try again.")
		return
	}
	hash, err := hashPassword(pw, u.cost)
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	usr, err := u.svc.CreateUser(r.Context(), sessions.User{Email: form.Email, FirstName: form.FirstName,
		LastName: form.LastName, Group: sessions.GroupRegistered, PasswordHash: string(hash)})
	switch {
	case errors.Is(err, sessions.ErrUserExists):
		// Answered exactly like a new account (and after the same hash),
		// so the form does not tell anyone which addresses have accounts.
		u.log.Info("webui: sign-up for an existing account", zap.String("client", ip))
	case err != nil:
		u.unavailable(w, r, err)
		return
	default:
		u.log.Info("webui: learner signed up", zap.String("user", usr.ID))
	}
	// Neither answer signs in: signing the new account in straight away
	// would tell it apart from an existing one.
	q := url.Values{"notice": {"signed-up"}, "username": {form.Email}}
	if form.Next != "" {
		q.Set("next", form.Next)
	}
	http.Redirect(w, r, routes.LoginPath+"?"+q.Encode(), http.StatusSeeOther)
}

// catalogItem is one workshop in the HTML catalog.
type catalogItem struct {
	Environment string
	Title       string
	Description string
	Duration    time.Duration
	Difficulty  string
	// Available counts ready reserves; 0 does not mean full, since
	// sessions can be created on demand up to capacity.
	Available int
	Capacity  int
	// Mine is the learner's live session in this environment, if any;
	// MineLeft its time left, once it runs ("25 min"), and MineStarting
	// whether its environment is still starting.
	Mine         string
	MineLeft     string
	MineStarting bool
	// Status says whether a session can be had now: ready (a reserve or a
	// fixed dashboard waits), starts (an environment starts on request),
	// queued (starts are busy: a new one waits its turn), full, limit
	// (the learner has as many sessions as they may have at once),
	// ending (they will not once their session that is ending has
	// stopped), or closed (capacity 0: no Start button).
	Status string
	// CreateURL is the anonymous-mode start link.
	CreateURL string
}

type catalogData struct {
	Items []catalogItem
	// CanStart shows Start forms (a logged-in learner); Anonymous shows
	// the anonymous start links; otherwise SignIn says how to start.
	CanStart, Anonymous, SignIn bool
	// Limit is how many sessions the learner may have at once (0: no
	// limit), for the cards of status limit.
	Limit int
}

// sessionLimitNotice is the catalog's notice code for a Start refused by the
// learner's own cap: the catalog, which shows the session they have and
// its Resume button, is the page where they can act on it.
const sessionLimitNotice = "session-limit"

// catalog serves the HTML catalog. Non-admin users go to the portal index
// when one is configured (reference §3.3); a private catalog needs a login.
func (u *UI) catalog(w http.ResponseWriter, r *http.Request, _ string) {
	id := u.current(r)
	note := knownNotification(r.URL.Query())
	own := ""
	if r.URL.Query().Get("notice") == sessionLimitNotice {
		own = sessionLimitNotice
	}
	if !id.admin() && u.cfg.Index != "" && !u.indexIsCatalog() {
		target := u.cfg.Index
		if note != "" {
			target = redirects.WithNotification(target, note)
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	data := catalogData{}
	switch {
	case id.admin():
		// The admin tries workshops as a learner would: the session is
		// the admin's own, under the same caps.
		data.CanStart = true
	case u.cfg.Registration == config.RegistrationAnonymous:
		data.Anonymous = true
	case id.learner():
		data.CanStart = true
	case u.cfg.Catalog == config.CatalogPublic:
		data.SignIn = u.learnersMayLogin()
	default:
		// A learner sent back here with one of Educates' notifications
		// (the portal's index is its own catalog) reads it above the
		// sign-in form, not a bare form that hides why they are here.
		target := routes.LoginPath + "?next=" + url.QueryEscape(routes.CatalogPath)
		if note != "" {
			target += "&notice=" + url.QueryEscape(note)
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	usage, err := u.svc.Usage(r.Context())
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	var held []*sessions.Session
	if id.holdsSessions() {
		if held, err = u.svc.HeldSessions(r.Context(), id.User); err != nil {
			u.unavailable(w, r, err)
			return
		}
	}
	var limitStatus string
	data.Limit, limitStatus = u.sessionLimit(id, held)
	if note == "session-unavailable" && limitStatus != "" {
		// Educates' notification cannot say that the cap was the
		// reason (the anonymous start link sends it); the cap is
		// checked first, so for a learner at it, it was.
		own = sessionLimitNotice
	}
	if own == sessionLimitNotice && limitStatus == "ending" {
		own = "session-ending"
	}
	for _, e := range u.svc.Environments() {
		if e.State != sessions.EnvRunning {
			continue
		}
		it := catalogItem{Environment: e.Name, Title: e.Workshop.Title, Description: e.Workshop.Description,
			Duration: e.Expires, Difficulty: e.Workshop.Difficulty, Capacity: e.Capacity,
			CreateURL: routes.CreatePath(e.Name)}
		if it.Title == "" {
			it.Title = e.Workshop.PublishedName()
		}
		use := usage[e.Name]
		it.Available = use.Available
		for _, s := range held {
			if s.Environment == e.Name && !s.State.Ending() {
				it.Mine, it.MineStarting = s.Name, s.State == lifecycle.Starting
				if s.State == lifecycle.Running && !s.Expires.IsZero() {
					it.MineLeft = minutesLeft(s.Expires.Sub(u.svc.Now()))
				}
			}
		}
		it.Status = catalogStatus(u.svc.Spawned(e), it.Available, use.Allocated, e.Capacity, use.Queued > 0)
		if limitStatus != "" && it.Mine == "" {
			it.Status = limitStatus
		}
		data.Items = append(data.Items, it)
	}
	// A start that failed, or a session that ended, comes back here with
	// Educates' notification.
	text := notice(note)
	if own != "" {
		text = notice(own)
	}
	if note == "session-deleted" || note == "startup-timeout" {
		text += u.whyEnded(r, id, r.URL.Query().Get("session"))
	}
	v := view{Title: "Workshops", Notice: text, Data: data}
	if limitStatus == "ending" {
		// Reloads until the session has stopped and the cards say
		// "ready" again.
		v.Refresh = 3
	}
	u.render(w, r, http.StatusOK, "catalog", id, v)
}

// sessionLimit is how many sessions learner id may have at once (0: no
// limit) and, when they have that many, the status of the catalog's other
// cards: limit, or ending when one of theirs is still stopping. It counts
// as the service counts the cap: every session of theirs in any workshop
// that is not STOPPED.
func (u *UI) sessionLimit(id identity, own []*sessions.Session) (int, string) {
	if !id.learner() && !id.anonymous() || id.Learner == nil {
		return 0, ""
	}
	limit := u.svc.SessionLimit(id.Learner.Group)
	held, ending := 0, 0
	for _, s := range own {
		if s.State != lifecycle.Stopped {
			held++
			if s.State == lifecycle.Stopping {
				ending++
			}
		}
	}
	switch {
	case limit == 0 || held < limit:
		return limit, ""
	case held-ending < limit:
		return limit, "ending"
	}
	return limit, "limit"
}

// whyEnded is, for the ended session name of the learner id, a sentence
// that says why it ended, to follow the notification's; "" for anyone
// else's session or none, and for one the learner ended themselves. The
// gate names the session when it sends its owner back here.
func (u *UI) whyEnded(r *http.Request, id identity, name string) string {
	if name == "" || !id.holdsSessions() {
		return ""
	}
	sess, err := u.svc.Get(r.Context(), name)
	if err != nil || sess.Owner != id.User {
		return ""
	}
	why := sessions.EndedBecause(sess)
	if why == "" {
		return ""
	}
	return " " + strings.ToUpper(why[:1]) + why[1:] + "."
}

// minutesLeft says a session's time left in the catalog, which does not
// count down as the session frame does: "25 min", "1 h 5 min".
func minutesLeft(d time.Duration) string {
	m := int(d / time.Minute)
	switch {
	case m < 1:
		return "less than a minute"
	case m < 60:
		return fmt.Sprintf("%d min", m)
	case m%60 == 0:
		return fmt.Sprintf("%d h", m/60)
	}
	return fmt.Sprintf("%d h %d min", m/60, m%60)
}

// catalogStatus is whether a learner can have a session of a workshop now.
func catalogStatus(spawned bool, available, allocated, capacity int, queued bool) string {
	switch {
	case capacity <= 0:
		// `capacity 0`: the workshop is listed but takes no sessions.
		return "closed"
	case available > 0:
		return "ready"
	case allocated >= capacity:
		return "full"
	case !spawned:
		return "ready"
	case queued:
		return "queued"
	}
	return "starts"
}

// indexIsCatalog reports whether the portal's index is its own catalog
// page, which then must not send learners to itself.
func (u *UI) indexIsCatalog() bool {
	return routes.IsCatalogURL(u.cfg.Index, func(name string) bool { return u.portalHost != nil && u.portalHost(name) })
}

// start is the catalog's Start form: it requests a session for the
// learner and sends the browser to the session's activation link, the
// same link the REST API hands out, so the gate issues its cookie there.
func (u *UI) start(w http.ResponseWriter, r *http.Request, _ string) {
	id := u.current(r)
	if !id.learner() && !id.admin() && !(id.anonymous() && r.PostFormValue("end") != "") {
		u.fail(w, r, http.StatusForbidden, "Sign in first", "Sign in to start a workshop.")
		return
	}
	if !u.csrfOK(r, id) {
		u.csrfFail(w, r)
		return
	}
	if name := r.PostFormValue("end"); name != "" {
		// An anonymous learner starts through the start links, but ends
		// here like any other.
		u.end(w, r, id, name)
		return
	}
	env := r.PostFormValue("environment")
	e := u.svc.Environment(env)
	if e == nil || e.State != sessions.EnvRunning {
		u.svc.RefuseUnknownEnvironment(env)
		u.fail(w, r, http.StatusNotFound, "Unknown workshop", "There is no such workshop on this portal.")
		return
	}
	index := u.cfg.Index
	if index == "" {
		index = routes.CatalogPath
	}
	req := sessions.Request{Environment: e.Name, User: id.User, IndexURL: index}
	if id.admin() {
		req.Group = sessions.GroupStaff
	}
	res, err := u.svc.RequestSession(r.Context(), req)
	// Refusals get httperr's status and the page's own words.
	switch {
	case errors.Is(err, sessions.ErrSessionLimit):
		// Not "try again later": the learner must end a session first.
		// The catalog shows which one, with its Resume button.
		http.Redirect(w, r, routes.CatalogPath+"?notice="+sessionLimitNotice, http.StatusSeeOther)
		return
	case errors.Is(err, sessions.ErrNoSession) && e.Capacity <= 0:
		u.fail(w, r, http.StatusConflict, "Workshop closed", "This workshop takes no sessions at the moment.")
		return
	case errors.Is(err, sessions.ErrNoSession), errors.Is(err, sessions.ErrCannotReacquire):
		w.Header().Set("Retry-After", "30")
		u.fail(w, r, httperr.Status(err), "No session available",
			"All sessions of this workshop are in use. Try again later.")
		return
	case errors.Is(err, sessions.ErrUserNotPermitted):
		u.fail(w, r, httperr.Status(err), "Not permitted", "This account cannot start workshop sessions.")
		return
	case errors.Is(err, sessions.ErrNoEnvironment):
		u.fail(w, r, httperr.Status(err), "Unknown workshop", "There is no such workshop on this portal.")
		return
	case err != nil:
		u.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, ActivationPath(res.Session.Name, res.Token, index), http.StatusSeeOther)
}

// end is the catalog's End session form: a learner ends a session of their
// own from the portal, in any browser they are signed in with (the
// dashboard's own End session needs the browser that holds the session's
// cookie). Someone else's session, or one that does not exist, gets the
// same 404, so the form cannot be used to learn session names.
func (u *UI) end(w http.ResponseWriter, r *http.Request, id identity, name string) {
	sess, err := u.svc.Get(r.Context(), name)
	switch {
	case errors.Is(err, sessions.ErrSessionNotFound) || err == nil && (sess.Owner != id.User || sess.Reserved()):
		u.fail(w, r, http.StatusNotFound, "No such session", "You have no session of that name.")
		return
	case err != nil:
		u.unavailable(w, r, err)
		return
	}
	if !sess.State.Ending() {
		if _, err := u.svc.Terminate(r.Context(), name, sessions.ReasonDeleted); err != nil &&
			!errors.Is(err, sessions.ErrSessionEnded) && !errors.Is(err, sessions.ErrSessionNotFound) {
			u.unavailable(w, r, err)
			return
		}
		u.log.Info("webui: learner ended session", zap.String("session", name), zap.String("user", id.User))
	}
	http.Redirect(w, r, routes.CatalogPath+"?notification=session-deleted", http.StatusSeeOther)
}

// ActivationPath is the session's activation link, in the same form as the
// REST API's request response (`url`): token first, as Educates writes it.
func ActivationPath(session, token, index string) string {
	return routes.ActivatePath(session) + "?token=" + url.QueryEscape(token) + "&index_url=" + url.QueryEscape(index)
}

// environmentStart is GET /workshops/environment/<env>/, the link Educates'
// web catalog starts a workshop with (its views/environment.py
// `environment`): a logged-in learner gets their session in env, the one
// they have or a new one, and goes through its activation link to the
// dashboard. Anyone else signs in first and comes back here. A failure
// goes to the `index_url` given, else the portal index, else the catalog,
// with Educates' notification: workshop-invalid for an unknown
// environment, session-unavailable when no session can be had (or, when
// that is the catalog, its notice of the learner's own session limit).
func (u *UI) environmentStart(w http.ResponseWriter, r *http.Request, env string) {
	id := u.current(r)
	switch {
	case id.admin():
		// The admin is no learner and cannot own sessions (the catalog
		// says so too); the login page would send them straight back.
		u.fail(w, r, http.StatusForbidden, "Not a learner", "The administrator cannot start workshop sessions. Sign in as a learner.")
		return
	case !id.learner():
		// Educates' login_required: back here, query and all, once
		// signed in. Built from the route, not the raw request path,
		// so a `//` prefix cannot make it look like another host.
		next := routes.EnvironmentPath(env)
		if r.URL.RawQuery != "" {
			next += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, routes.LoginPath+"?next="+url.QueryEscape(next), http.StatusFound)
		return
	}
	indexURL := strings.TrimSpace(r.URL.Query().Get("index_url"))
	// Where failures go: never an address the redirect policy refuses.
	if indexURL != "" {
		if err := u.redirect.Check(indexURL, u.selfOrigin(r)); err != nil {
			u.fail(w, r, http.StatusBadRequest, "Bad redirect", "The address to return to is not allowed on this portal.")
			return
		}
	}
	back := indexURL
	if back == "" {
		back = u.cfg.Index
	}
	if back == "" {
		back = routes.CatalogPath
	}
	notify := func(notification string) {
		http.Redirect(w, r, redirects.WithNotification(back, notification), http.StatusFound)
	}
	e := u.svc.Environment(env)
	if e == nil {
		u.svc.RefuseUnknownEnvironment(env)
		notify("workshop-invalid")
		return
	}
	if e.State != sessions.EnvRunning {
		// It exists but takes no sessions (its workshop was removed).
		notify("session-unavailable")
		return
	}
	res, err := u.svc.RequestSession(r.Context(), sessions.Request{Environment: e.Name, User: id.User, IndexURL: back})
	switch {
	case errors.Is(err, sessions.ErrNoEnvironment):
		notify("workshop-invalid")
		return
	case errors.Is(err, sessions.ErrSessionLimit) && (back == routes.CatalogPath || back == u.cfg.Index && u.indexIsCatalog()):
		// The portal's own catalog can say why, which Educates'
		// notifications cannot; a hub gets session-unavailable.
		http.Redirect(w, r, routes.CatalogPath+"?notice="+sessionLimitNotice, http.StatusFound)
		return
	case errors.Is(err, sessions.ErrNoSession), errors.Is(err, sessions.ErrCannotReacquire),
		errors.Is(err, sessions.ErrUserNotPermitted):
		notify("session-unavailable")
		return
	case err != nil:
		u.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, ActivationPath(res.Session.Name, res.Token, back), http.StatusFound)
}

// selfOrigin is the origin the request arrived on (the configured public
// URL's when set), which redirects may always go to.
func (u *UI) selfOrigin(r *http.Request) string {
	if u.cfg.URL != "" {
		return strings.TrimSuffix(u.cfg.URL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
