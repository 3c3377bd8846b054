variable "sender" {
  type        = string
  description = "E-mail address or domain alerts are sent from."
}
