policy "broken" {
  every = 
  provider "test" { name = "x" }
}
