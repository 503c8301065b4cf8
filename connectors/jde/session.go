package jde

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AIS paths of the session service.
const (
	pathToken  = "/jderest/v2/tokenrequest"
	pathLogout = "/jderest/v2/tokenrequest/logout"
)

// session returns the current session, logging in first when there is
// none or when it is RefreshEvery old. The old session is logged out, so
// refreshing does not leave sessions behind on the AIS server.
func (c *Client) session(ctx context.Context) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sess; s != nil && c.cfg.Now().Sub(s.loggedInAt) < c.cfg.RefreshEvery {
		return s, nil
	}
	old := c.sess
	s, err := c.login(ctx)
	if err != nil {
		return nil, err
	}
	c.sess = s
	if old != nil {
		c.logout(ctx, old.token)
	}
	return s, nil
}

// dropSession forgets s after AIS refused its token, unless another caller
// has already replaced it.
func (c *Client) dropSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
	}
}

// DateFormat returns the date format of the current session's user, as AIS
// reported it at login, logging in first if needed.
func (c *Client) DateFormat(ctx context.Context) (DateFormat, error) {
	s, err := c.session(ctx)
	if err != nil {
		return DateFormat{}, err
	}
	return s.dateFormat, nil
}

// Ping logs in if there is no session yet, which proves the URL, the
// credentials and the environment.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.session(ctx)
	return err
}

type tokenRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DeviceName  string `json:"deviceName"`
	Environment string `json:"environment,omitempty"`
	Role        string `json:"role,omitempty"`
}

type tokenResponse struct {
	Username    string `json:"username"`
	Environment string `json:"environment"`
	Role        string `json:"role"`
	UserInfo    struct {
		Token         string `json:"token"`
		DateFormat    string `json:"dateFormat"`
		DateSeparator string `json:"dateSeperator"` // sic: AIS's spelling
	} `json:"userInfo"`
}

// login asks AIS for a new session token.
func (c *Client) login(ctx context.Context) (*session, error) {
	body, err := json.Marshal(tokenRequest{
		Username:    c.cfg.Username,
		Password:    c.cfg.Password.Reveal(),
		DeviceName:  c.cfg.DeviceName,
		Environment: c.cfg.Environment,
		Role:        c.cfg.Role,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: jde: token request: %w", ErrInvalid, err)
	}
	resp, err := c.send(ctx, exchange{op: "token request", url: c.url(pathToken), body: body})
	if err != nil {
		return nil, err
	}
	var tr tokenResponse
	if err := decodeOK("token request", resp, &tr); err != nil {
		return nil, err
	}
	if tr.UserInfo.Token == "" {
		return nil, fmt.Errorf("jde: token request: %w: answer without a token", ErrUnavailable)
	}
	s := &session{token: tr.UserInfo.Token, loggedInAt: c.cfg.Now(), dateFormat: DefaultDateFormat}
	if tr.UserInfo.DateFormat != "" {
		s.dateFormat.Order = tr.UserInfo.DateFormat
	}
	if tr.UserInfo.DateSeparator != "" {
		s.dateFormat.Separator = tr.UserInfo.DateSeparator
	}
	c.cfg.Log.InfoContext(ctx, "jde session opened", "connection", c.cfg.Name, "environment", tr.Environment, "role", tr.Role)
	return s, nil
}

// logout ends a session on the AIS server. It is best effort: a session
// that cannot be logged out expires on its own.
func (c *Client) logout(ctx context.Context, token string) {
	body, _ := json.Marshal(map[string]string{"token": token})
	resp, err := c.send(ctx, exchange{op: "logout", url: c.url(pathLogout), body: body, token: token, noWait: true})
	if err == nil && (resp.status < 200 || resp.status > 299) && resp.status != StatusInvalidToken {
		err = decodeError("logout", resp)
	}
	if err != nil {
		c.cfg.Log.WarnContext(ctx, "jde logout failed; the session will expire on its own", "connection", c.cfg.Name, "error", err)
	}
}

// Close logs the current session out. The client may still be used
// afterwards; it would log in again.
func (c *Client) Close(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	c.logout(ctx, c.sess.token)
	c.sess = nil
}
