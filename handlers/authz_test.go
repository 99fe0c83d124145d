package handlers

import (
	"context"
	"testing"

	"github.com/sovereign-im/sovereign/models"
)

// TestRequireAdmin: the admin-only guard lets admins through and refuses
// members (403) and anonymous callers (401).
func TestRequireAdmin(t *testing.T) {
	tests := []struct {
		p    *models.Principal
		code models.Code
	}{
		{&models.Principal{UserID: "a", Role: models.RoleAdmin}, ""},
		{&models.Principal{UserID: "m", Role: models.RoleMember}, models.EFORBIDDEN},
		{nil, models.EUNAUTHORIZED},
	}
	for _, tt := range tests {
		ctx := context.Background()
		if tt.p != nil {
			ctx = context.WithValue(ctx, principalKey{}, tt.p)
		}
		p, err := requireAdmin(ctx)
		if tt.code == "" {
			if err != nil || p != tt.p {
				t.Errorf("admin refused: %v", err)
			}
			continue
		}
		if !models.IsCode(err, tt.code) {
			t.Errorf("principal %+v: err %v, want %s", tt.p, err, tt.code)
		}
	}
}
