<?php
namespace Demo;

final class Hello
{
    public static function say(): string
    {
        return 'hello from behind mod_bbauth';
    }
}
