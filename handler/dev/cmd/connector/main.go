// Command connector writes a ready-to-import copy of the Power Automate
// connector for one deployment (make connector; azd's postprovision hook):
// the checked-in connector/ with the deployment's host, OAuth client id and
// resource URI filled in from azd's outputs and environment.
//
//	go run ./handler/dev/cmd/connector [-src connector] [-out dist/connector]
//
// Settings (environment): SWITCHBOARD_API_URL, CONNECTOR_CLIENT_ID (default
// PRESENCE_APP_CLIENT_ID), API_AUDIENCE (default api://<client id>),
// CONNECTOR_WEBSITE (default the app's URL), CONNECTOR_PRIVACY_POLICY_URL,
// CONNECTOR_CONTACT_EMAIL.
package main

import (
	"flag"
	"fmt"
	"os"

	"switchboard/handler/dev/connector"
)

func main() {
	src := flag.String("src", "connector", "folder of the checked-in connector")
	out := flag.String("out", "dist/connector", "folder to write the ready-to-import copy to")
	flag.Parse()
	if err := connector.Write(*src, *out, connector.FromEnv(os.Getenv)); err != nil {
		fmt.Fprintf(os.Stderr, "connector: nothing written:\n%v\n(azd env set NAME value, then azd hooks run postprovision; or export them and run "+
			"make connector)\n", err)
		os.Exit(1)
	}
	fmt.Printf("connector: %s is ready to import (paconn create --api-def %[1]s/apiDefinition.swagger.json --api-prop %[1]s/apiProperties.json)\n", *out)
}
