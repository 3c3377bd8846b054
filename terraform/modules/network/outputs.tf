output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Subnets of the ECS tasks, the database and the internal load balancer."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Subnets of the NAT gateway and of a public load balancer, if one is chosen."
  value       = aws_subnet.public[*].id
}

output "cidr_block" {
  description = "The VPC's address range."
  value       = aws_vpc.this.cidr_block
}
