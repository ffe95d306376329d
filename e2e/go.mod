module github.com/gobff/bff/e2e

go 1.26.0

require (
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/gobff/bff v0.0.0
	github.com/gobff/bff/internal/chromium v0.0.0
)

require (
	github.com/go-jose/go-jose/v4 v4.1.9 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/gomodule/redigo v1.9.3 // indirect
)

replace github.com/gobff/bff => ../

replace github.com/gobff/bff/internal/chromium => ../internal/chromium
