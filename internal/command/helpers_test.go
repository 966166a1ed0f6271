package command

import "github.com/hashicorp/hcl/v2"

func hcl0() hcl.Range { return hcl.Range{Filename: "test.hcl"} }
