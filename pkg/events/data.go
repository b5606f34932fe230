package events

import (
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
)

// setData stores v as ev's JSON object data. The sdk's SetData would store a
// []byte as base64 and anything else without checking it is an object.
func setData(ev *event.Event, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("events: data: %w", err)
	}
	if !isObject(b) {
		return fmt.Errorf("events: data must be a JSON object; %T renders as %s", v, kind(b))
	}
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded, ev.DataBase64 = b, false
	return nil
}
