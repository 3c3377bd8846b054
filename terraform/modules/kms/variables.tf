variable "name" {
  type        = string
  description = "Name of the key's alias (alias/<name>)."
}
